import { ChatFailure, ChatHeader } from '@switchboard/protocol';
import type { z } from 'zod';
import type { Message } from '../eventbus/types.js';
import { StoreError } from '../store/types.js';
import { describeIssues } from './schemas.js';

/** A refusal with a chat code: the requester gets RECIPIENT_FAILURE with it (docs/chat.md#failures). */
export class ChatRequestError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** How a 503 of a store shedding load starts (load-shed.ts's "store busy: …"). */
const STORE_BUSY = 'message store busy';

type Log = { warn(obj: object, msg: string): void };

/**
 * A request answered later than this is logged with its address, room and time, on every node it
 * passed (the client's node, the room's owner): where a slow send or join spent its time.
 */
export const SLOW_REQUEST_MS = 1_000;

/**
 * Turns handlers' outcomes into replies, and counts the requests being handled so that a drain
 * can wait for them: a node that stops must not drop an ack it owes.
 */
export class InFlightRequests {
  private count = 0;

  constructor(
    private readonly log: Log,
    private readonly slowMs = SLOW_REQUEST_MS,
  ) {}

  /** Runs a handler and turns its outcome into a reply or a RECIPIENT_FAILURE with a chat code. */
  handler<T>(fn: (m: Message<unknown>) => Promise<T>) {
    return async (m: Message<unknown>): Promise<void> => {
      this.count += 1;
      const t0 = performance.now();
      let outcome = 'ok';
      try {
        const result = await fn(m);
        if (m.replyAddress) m.reply(result);
      } catch (err) {
        const { code, text } = failureOf(err);
        outcome = String(code);
        // Shed load is counted in /metrics, not logged: it comes by the thousand while the store is slow.
        if (code >= 500 && !text.startsWith(STORE_BUSY))
          this.log.warn({ address: m.address, err: String(err) }, 'chat request failed');
        if (m.replyAddress) m.fail(code, text);
      } finally {
        this.count -= 1;
        const ms = Math.round(performance.now() - t0);
        if (ms > this.slowMs)
          this.log.warn({ address: m.address, room: roomOf(m.body), ms, outcome }, 'chat request slow');
      }
    };
  }

  /** Waits, at most `graceMs`, for the requests in flight to be answered. */
  async drain(graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs;
    while (this.count > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (this.count > 0) this.log.warn({ inFlight: this.count }, 'chat: requests still in flight at stop');
  }
}

function roomOf(body: unknown): string | undefined {
  const room = typeof body === 'object' && body !== null ? (body as { room?: unknown }).room : undefined;
  return typeof room === 'string' ? room.slice(0, 200) : undefined;
}

function failureOf(err: unknown): { code: number; text: string } {
  if (err instanceof ChatRequestError) return { code: err.code, text: err.message };
  if (err instanceof StoreError) {
    if (err.code === 'INVALID') return { code: ChatFailure.BAD_REQUEST, text: err.message };
    // Retriable at once-or-later: the client backs off with jitter (messages-lib: isStoreBusy).
    if (err.code === 'BUSY') return { code: ChatFailure.UNAVAILABLE, text: `message ${err.message}` };
    return { code: ChatFailure.UNAVAILABLE, text: `message store unavailable: ${err.message}` };
  }
  return { code: ChatFailure.INTERNAL, text: 'internal error' };
}

/** Validates a request body; with a verified user (a bridge's header) the body's user is replaced by it. */
export function parseRequest<T>(schema: z.ZodType<T>, body: unknown, headers?: Record<string, string>): T {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ChatRequestError(ChatFailure.BAD_REQUEST, 'body: expected a JSON object');
  }
  const verifiedUser = headers?.[ChatHeader.verifiedUser];
  const r = schema.safeParse(
    verifiedUser !== undefined && 'user' in body ? { ...body, user: verifiedUser } : body,
  );
  if (!r.success) throw new ChatRequestError(ChatFailure.BAD_REQUEST, describeIssues(r.error));
  return r.data;
}
