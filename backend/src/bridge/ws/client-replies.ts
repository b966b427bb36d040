import { newReplyAlias } from '../delivery.js';
import type { Message } from '../../eventbus/types.js';

/**
 * Bus messages handed to the client that expect its reply, by the unguessable alias the client
 * got instead of the bus's reply address: only this socket can answer them.
 */
export class ClientReplies {
  private readonly awaiting = new Map<string, { message: Message<unknown>; timer: NodeJS.Timeout }>();

  constructor(private readonly timeoutMs: number) {}

  /** Keeps the message until this socket replies; returns the alias the client replies to. */
  expect(message: Message<unknown>): string {
    const alias = newReplyAlias();
    const timer = setTimeout(() => this.awaiting.delete(alias), this.timeoutMs);
    timer.unref();
    this.awaiting.set(alias, { message, timer });
    return alias;
  }

  /** The message the client answers by sending to `alias`, if it still waits; it waits no more. */
  take(alias: string): Message<unknown> | undefined {
    const awaiting = this.awaiting.get(alias);
    if (!awaiting) return undefined;
    clearTimeout(awaiting.timer);
    this.awaiting.delete(alias);
    return awaiting.message;
  }

  clear(): void {
    for (const { timer } of this.awaiting.values()) clearTimeout(timer);
    this.awaiting.clear();
  }
}
