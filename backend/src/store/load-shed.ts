/**
 * LoadSheddingStore: bounded store work per node, and fail-fast while the database is slow.
 *
 * A slow database must not be buried under the work it cannot do: requests that queue up behind
 * it time out at the client, are retried, and the retries queue up too (the collapse the cluster
 * soak of issue 26 showed). So at most `maxInFlight` calls are out at once, and while the store is
 * degraded (the oldest call in flight is older than `slowMs`, or the store reports itself
 * unhealthy) new calls fail at once with `StoreError('BUSY')`, a retriable error the clients back
 * off on with jitter, except one call at a time that probes whether the database is back (and one
 * more every `slowMs` while a slow call is out: a call stuck in the driver must not hold every
 * write for its whole bound; once a later call is answered, the stuck one no longer counts).
 * Nothing here queues or retries: the clients' outboxes hold what was not stored.
 *
 * Reads the recent tail answers (recent-tail.ts sits in front of this) never get here, so joins of
 * active rooms keep working while the database is slow.
 */
import { StoreError } from './types.js';
import type { AppendInput, AppendResult, ChatMessage, HistoryQuery, MessageStore } from './types.js';

export interface LoadShedOptions {
  /** Store calls out at once, per node. */
  maxInFlight: number;
  /** A call out longer than this marks the store degraded. */
  slowMs: number;
  /** Clock (tests). */
  now?: () => number;
}

export interface LoadShedStats {
  inFlight: number;
  degraded: boolean;
  /** Calls refused with BUSY since start. */
  shed: number;
}

export class LoadSheddingStore implements MessageStore {
  /** Start time of each call out, oldest first. */
  private readonly out = new Map<number, number>();
  private nextId = 0;
  /** The latest-started call the database answered: calls out since before it are stragglers. */
  private answeredId = -1;
  /** Start of the last call let through. */
  private admittedAt = Number.NEGATIVE_INFINITY;
  private shedCount = 0;
  private readonly now: () => number;

  constructor(
    private readonly inner: MessageStore,
    private readonly opts: LoadShedOptions,
  ) {
    this.now = opts.now ?? (() => performance.now());
  }

  get kind(): string {
    return this.inner.kind;
  }

  /** Whether the store is slow or down now: new calls are refused but for one probe at a time. */
  isDegraded(): boolean {
    return this.slowFor() !== undefined || !this.inner.isHealthy();
  }

  stats(): LoadShedStats {
    return { inFlight: this.out.size, degraded: this.isDegraded(), shed: this.shedCount };
  }

  open(): Promise<void> {
    return this.inner.open();
  }

  epoch(): string {
    return this.inner.epoch();
  }

  append(input: AppendInput): Promise<AppendResult> {
    return this.admit(() => this.inner.append(input));
  }

  history(room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    return this.admit(() => this.inner.history(room, query));
  }

  latest(room: string, limit: number): Promise<ChatMessage[]> {
    return this.admit(() => this.inner.latest(room, limit));
  }

  lastSeq(room: string): Promise<number> {
    return this.admit(() => this.inner.lastSeq(room));
  }

  isHealthy(): boolean {
    return this.inner.isHealthy();
  }

  flush(): Promise<void> {
    return this.inner.flush();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /**
   * Start of the oldest call out that no later call overtook: a call the database has answered a
   * newer one around is stuck somewhere else (a driver caught by a restart of the database was
   * seen to hold one until its bound, 20 s) and says nothing about the database any more.
   */
  private oldestPending(): number | undefined {
    for (const [id, start] of this.out) if (id > this.answeredId) return start;
    return undefined;
  }

  /** Age in ms of the oldest call out that still counts, when it is past slowMs. */
  private slowFor(): number | undefined {
    const oldest = this.oldestPending();
    if (oldest === undefined) return undefined;
    const age = this.now() - oldest;
    return age > this.opts.slowMs ? age : undefined;
  }

  private admit<T>(call: () => Promise<T>): Promise<T> {
    const refusal = this.refusal();
    if (refusal !== undefined) {
      this.shedCount++;
      return Promise.reject(new StoreError('BUSY', refusal));
    }
    const id = this.nextId++;
    const start = this.now();
    this.out.set(id, start);
    this.admittedAt = start;
    let result: Promise<T>;
    try {
      result = call();
    } catch (err) {
      this.out.delete(id);
      return Promise.reject(err);
    }
    return result.then(
      (value) => {
        this.answered(id);
        return value;
      },
      (err: unknown) => {
        // Refusals of the call itself (invalid input) are answers too; the database's absence is not.
        if (err instanceof StoreError && err.code === 'INVALID') this.answered(id);
        else this.out.delete(id);
        throw err;
      },
    );
  }

  private answered(id: number): void {
    this.out.delete(id);
    if (id > this.answeredId) this.answeredId = id;
  }

  private refusal(): string | undefined {
    if (this.out.size >= this.opts.maxInFlight) {
      return `store busy: ${this.out.size} calls in flight on this node (STORE_MAX_IN_FLIGHT); retry later`;
    }
    // Degraded: one call at a time finds out whether the database is back.
    if (this.oldestPending() === undefined) return undefined;
    const slow = this.slowFor();
    if (slow !== undefined) {
      // And one more every slowMs while the slow one is out: if that one is answered, the slow one
      // was stuck on its own and the database is fine.
      if (this.now() - this.admittedAt >= this.opts.slowMs) return undefined;
      return `store busy: the database is slow (a call has been out ${Math.round(slow)} ms); retry later`;
    }
    if (!this.inner.isHealthy()) return 'store busy: the database is unavailable; retry later';
    return undefined;
  }
}
