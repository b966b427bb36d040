import { ChatError } from './errors.js';
import { type Timer, uuid } from './util.js';

/** The error a request fails with when the bridge refuses its frame. */
export type RefusalError = (reason: string, message?: string) => ChatError;

export interface PendingRequest {
  address: string;
  resolve: (body: unknown) => void;
  reject: (err: ChatError) => void;
  timer: Timer;
  refusal: RefusalError;
}

/** Requests waiting for their reply, by the reply address each was sent with. */
export class PendingRequests {
  private readonly byReply = new Map<string, PendingRequest>();

  /**
   * Waits for the reply to a request to `address`, which `send` sends with the reply address it is
   * given; fails with TIMEOUT after `timeoutMs`, or with what `send` throws.
   */
  expect<T>(
    address: string,
    timeoutMs: number,
    refusal: RefusalError,
    send: (replyAddress: string) => void,
  ): Promise<T> {
    const replyAddress = uuid();
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.byReply.delete(replyAddress);
        reject(new ChatError('TIMEOUT', `no reply from ${address} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.byReply.set(replyAddress, {
        address,
        resolve: resolve as (b: unknown) => void,
        reject,
        timer,
        refusal,
      });
      try {
        send(replyAddress);
      } catch (err) {
        clearTimeout(timer);
        this.byReply.delete(replyAddress);
        reject(err instanceof ChatError ? err : new ChatError('DISCONNECTED', String(err), { cause: err }));
      }
    });
  }

  has(replyAddress: string): boolean {
    return this.byReply.has(replyAddress);
  }

  /** The request waiting at `replyAddress`, which no longer waits (its timeout is cleared). */
  take(replyAddress: string): PendingRequest | undefined {
    const pending = this.byReply.get(replyAddress);
    if (!pending) return undefined;
    this.byReply.delete(replyAddress);
    clearTimeout(pending.timer);
    return pending;
  }

  failAll(err: ChatError): void {
    const all = [...this.byReply.values()];
    this.byReply.clear();
    for (const p of all) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  }
}
