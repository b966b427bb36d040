/**
 * LoadSheddingStore: bounded store work per node, and fail-fast while the database is slow.
 *
 * A slow database must not be buried under the work it cannot do: requests that queue up behind
 * it time out at the client, are retried, and the retries queue up too (the collapse the cluster
 * soak of issue 26 showed). So at most `maxInFlight` calls are out at once, and while the store is
 * degraded (the oldest call in flight is older than `slowMs`, or the store reports itself
 * unhealthy) new calls fail at once with `StoreError('BUSY')`, a retriable error the clients back
 * off on with jitter, except one call at a time that probes whether the database is back. Nothing
 * here queues or retries: the clients' outboxes hold what was not stored.
 *
 * Writes (appends) and reads (history pages, tail loads, lastSeq) are judged apart, each by its own
 * calls: a read can be slow where a write is not (a history page far back is a collection scan on
 * FerretDB; the cluster soak saw such reads shed every send for seconds), and a slow read must not
 * stop messages from being stored. A database that is really slow or down soon slows both.
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

type Lane = 'write' | 'read';

export class LoadSheddingStore implements MessageStore {
  /** Start time of each call out, oldest first, per lane. */
  private readonly out: Record<Lane, Map<number, number>> = { write: new Map(), read: new Map() };
  private nextId = 0;
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

  /** Whether the store is slow or down now: new calls (of the slow kind) are refused but for one probe at a time. */
  isDegraded(): boolean {
    return (
      this.slowFor('write') !== undefined || this.slowFor('read') !== undefined || !this.inner.isHealthy()
    );
  }

  stats(): LoadShedStats {
    return { inFlight: this.inFlight(), degraded: this.isDegraded(), shed: this.shedCount };
  }

  private inFlight(): number {
    return this.out.write.size + this.out.read.size;
  }

  open(): Promise<void> {
    return this.inner.open();
  }

  epoch(): string {
    return this.inner.epoch();
  }

  append(input: AppendInput): Promise<AppendResult> {
    return this.admit('write', () => this.inner.append(input));
  }

  history(room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    return this.admit('read', () => this.inner.history(room, query));
  }

  latest(room: string, limit: number): Promise<ChatMessage[]> {
    return this.admit('read', () => this.inner.latest(room, limit));
  }

  lastSeq(room: string): Promise<number> {
    return this.admit('read', () => this.inner.lastSeq(room));
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

  /** Age in ms of the lane's oldest call out, when it is past slowMs. */
  private slowFor(lane: Lane): number | undefined {
    const oldest = this.out[lane].values().next().value;
    if (oldest === undefined) return undefined;
    const age = this.now() - oldest;
    return age > this.opts.slowMs ? age : undefined;
  }

  private admit<T>(lane: Lane, call: () => Promise<T>): Promise<T> {
    const refusal = this.refusal(lane);
    if (refusal !== undefined) {
      this.shedCount++;
      return Promise.reject(new StoreError('BUSY', refusal));
    }
    const out = this.out[lane];
    const id = this.nextId++;
    out.set(id, this.now());
    let result: Promise<T>;
    try {
      result = call();
    } catch (err) {
      out.delete(id);
      return Promise.reject(err);
    }
    return result.finally(() => out.delete(id));
  }

  private refusal(lane: Lane): string | undefined {
    const inFlight = this.inFlight();
    if (inFlight >= this.opts.maxInFlight) {
      return `store busy: ${inFlight} calls in flight on this node (STORE_MAX_IN_FLIGHT); retry later`;
    }
    // Degraded: one call at a time (of this kind) finds out whether the database is back.
    if (this.out[lane].size === 0) return undefined;
    const slow = this.slowFor(lane);
    if (slow !== undefined) {
      return `store busy: the database is slow (a ${lane} has been out ${Math.round(slow)} ms); retry later`;
    }
    if (!this.inner.isHealthy()) return 'store busy: the database is unavailable; retry later';
    return undefined;
  }
}
