import { ChatError } from './errors.js';
import { backoffDelay, type BackoffOptions, clamp01 } from './util.js';

/** Close codes after which the client does not reconnect (docs/protocol.md). */
export const CLOSE_NORMAL = 1000;
const CLOSE_POLICY = 1008;
const CLOSE_TOO_BIG = 1009;
export const CLOSE_SERVICE_RESTART = 1012;
/**
 * Consecutive 1012s (a draining node refusing the connection) retried within the drain jitter
 * rather than the backoff: the next connection most likely reaches another node. After these, the
 * backoff takes over, so a cluster that is shutting down as a whole is not hammered.
 */
const FAST_DRAIN_RETRIES = 3;
/** Local stand-in when the socket is dropped by us (dead link, handshake timeout). */
export const CLOSE_ABNORMAL = 1006;

/** The last refusal the bridge sent: what a 1008 close is reported with. */
export interface BridgeRefusal {
  body: string;
  message?: string;
}

/**
 * The error a close ends the client's run with (the server refused the client for good), or
 * undefined when the client reconnects.
 */
export function fatalClose(
  code: number,
  reason: string,
  refused: BridgeRefusal | undefined,
): ChatError | undefined {
  if (code === CLOSE_POLICY) {
    return new ChatError(
      'AUTH',
      `the server refused the connection (1008${reason ? ` ${reason}` : ''})` +
        (refused ? `: ${refused.body}${refused.message ? ` (${refused.message})` : ''}` : ''),
      { code, reason: refused?.body ?? reason },
    );
  }
  if (code === CLOSE_TOO_BIG) {
    return new ChatError('CLOSED', `the server closed the connection: frame too large (1009)`, { code });
  }
  if (code === CLOSE_NORMAL) {
    return new ChatError('CLOSED', `the server closed the connection (1000${reason ? ` ${reason}` : ''})`, {
      code,
    });
  }
  return undefined;
}

/**
 * How long to wait before each reconnection: exponential backoff with full jitter over the
 * consecutive failures, the drain jitter for a draining node's first refusals, or the time a
 * draining server asked for.
 */
export class ReconnectDelays {
  /** Consecutive failures, from 0. */
  private attempt = 0;
  private drainAt: number | undefined;

  constructor(
    private readonly backoff: BackoffOptions,
    private readonly drainJitterMs: number,
    private readonly random: () => number,
  ) {}

  /** The next failure starts the backoff afresh. */
  reset(): void {
    this.attempt = 0;
  }

  /**
   * The server drains: the next reconnection goes after `afterMs` plus up to `jitterMs` (default:
   * the client's drain jitter). Returns the delay until then.
   */
  drain(afterMs: number, jitterMs = this.drainJitterMs): number {
    this.drainAt = Date.now() + afterMs + Math.floor(clamp01(this.random()) * jitterMs);
    return Math.max(0, this.drainAt - Date.now());
  }

  /** The delay of the reconnection after a close with `code`, and the failures before it. */
  next(code: number): { attempt: number; delayMs: number } {
    let delayMs: number;
    const attempt = this.attempt;
    if (this.drainAt !== undefined) {
      delayMs = Math.max(0, this.drainAt - Date.now());
      this.drainAt = undefined;
    } else if (code === CLOSE_SERVICE_RESTART && attempt < FAST_DRAIN_RETRIES) {
      delayMs = Math.floor(clamp01(this.random()) * this.drainJitterMs);
      this.attempt++;
    } else {
      delayMs = backoffDelay(attempt, this.backoff, this.random);
      this.attempt++;
    }
    return { attempt, delayMs };
  }
}
