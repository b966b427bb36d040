/**
 * Tells this node's clients when the message store is back after being degraded.
 *
 * While the store is slow or down, sends are refused with a retriable 503 and the clients back off
 * with jitter (messages-lib: up to `reconnect.maxMs`, 10 s). A client that backed off for 8 s just
 * before the database came back leaves its message waiting those 8 s: the backlog drains as slowly
 * as the slowest backoff. So when the store stops being degraded, every session is told that it
 * may retry now, within a spread that keeps the retries at a bounded rate
 * (`STORE_RETRY_PER_SEC`); a client only shortens a retry it has already scheduled.
 *
 * A store that flaps around its slow threshold must not turn into a stream of notices: at most one
 * per `minIntervalMs`, and a recovery within it is noticed when the interval ends.
 */

/** A client connection that can be told to retry its refused sends (WebSocket sessions). */
export interface RetryHintable {
  hintRetry(reason: string, jitterMs: number): void;
}

export interface StoreRecoveryOptions {
  /** Whether the store is slow or down now (LoadSheddingStore.isDegraded). */
  degraded: () => boolean;
  sessions: () => Iterable<RetryHintable>;
  /** STORE_RETRY_PER_SEC: retries per second the notice may cause at most, on this node. */
  retriesPerSec: number;
  /** How often the store's state is looked at. Default 250 ms. */
  checkMs?: number;
  /** Fewest ms between two notices. Default 5 000. */
  minIntervalMs?: number;
  /** The narrowest spread, however few the sessions. Default 500 ms. */
  minSpreadMs?: number;
  /** The widest spread: a client's own backoff ends by then anyway. Default 10 000 ms. */
  maxSpreadMs?: number;
  now?: () => number;
  log: { info(obj: object, msg: string): void };
}

export const STORE_BACK_REASON = 'store available';

export class StoreRecoveryNotice {
  private timer: NodeJS.Timeout | undefined;
  private wasDegraded = false;
  private lastNoticeAt = Number.NEGATIVE_INFINITY;
  private notices = 0;
  private readonly now: () => number;

  constructor(private readonly opts: StoreRecoveryOptions) {
    this.now = opts.now ?? (() => performance.now());
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.check(), this.opts.checkMs ?? 250);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Notices sent since start (metrics, tests). */
  get sent(): number {
    return this.notices;
  }

  /** One look at the store; sends the notice on a degraded → healthy change. */
  check(): void {
    if (this.opts.degraded()) {
      this.wasDegraded = true;
      return;
    }
    if (!this.wasDegraded) return;
    if (this.now() - this.lastNoticeAt < (this.opts.minIntervalMs ?? 5_000)) return; // kept for later
    this.wasDegraded = false;
    this.lastNoticeAt = this.now();
    this.notices++;
    const sessions = [...this.opts.sessions()];
    const spreadMs = Math.round(
      Math.min(
        this.opts.maxSpreadMs ?? 10_000,
        Math.max(this.opts.minSpreadMs ?? 500, (sessions.length * 1000) / this.opts.retriesPerSec),
      ),
    );
    for (const s of sessions) s.hintRetry(STORE_BACK_REASON, spreadMs);
    this.opts.log.info(
      { sessions: sessions.length, spreadMs },
      'store available again: clients told to retry their refused sends',
    );
  }
}
