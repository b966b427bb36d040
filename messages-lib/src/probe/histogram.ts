import type { Percentiles } from './stats.js';

/**
 * Latencies in fixed buckets: 1 ms wide up to 1 s, then 1 % wide up to about 10 minutes. Memory
 * does not grow with the number of samples, and percentiles are exact to the millisecond below 1 s
 * (nearest rank over samples rounded to whole milliseconds), within 1 % above.
 */
const LINEAR_MS = 1_000;
const GROWTH = 1.01;
const LOG_BUCKETS = Math.ceil(Math.log(600_000 / LINEAR_MS) / Math.log(GROWTH)) + 1;

export class LatencyHistogram {
  readonly counts: Float64Array;
  count = 0;
  sumMs = 0;
  maxMs = 0;

  constructor(counts?: ArrayLike<number>) {
    this.counts = new Float64Array(LINEAR_MS + LOG_BUCKETS);
    if (counts) {
      this.counts.set(counts);
      for (let i = 0; i < this.counts.length; i++) this.count += this.counts[i]!;
    }
  }

  add(ms: number): void {
    const v = Math.max(0, ms);
    this.counts[bucketOf(v)]!++;
    this.count++;
    this.sumMs += v;
    if (v > this.maxMs) this.maxMs = v;
  }

  merge(other: { counts: ArrayLike<number>; count: number; sumMs: number; maxMs: number }): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i]! += other.counts[i] ?? 0;
    this.count += other.count;
    this.sumMs += other.sumMs;
    this.maxMs = Math.max(this.maxMs, other.maxMs);
  }

  /** The nearest-rank p-th percentile in whole ms, never above the exact maximum. */
  quantile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(Math.round(valueOf(i)), Math.round(this.maxMs));
    }
    return Math.round(this.maxMs);
  }

  percentiles(): Percentiles {
    return { p50: this.quantile(50), p99: this.quantile(99), max: Math.round(this.maxMs) };
  }

  /** Samples at or below `ms` (for Prometheus `le` buckets). */
  countAtOrBelow(ms: number): number {
    const last = bucketOf(ms);
    let n = 0;
    for (let i = 0; i <= last && i < this.counts.length; i++) n += this.counts[i]!;
    return n;
  }

  toJSON(): { counts: number[]; count: number; sumMs: number; maxMs: number } {
    // Sparse, for passing between worker threads: [index, count, index, count, …].
    const sparse: number[] = [];
    for (let i = 0; i < this.counts.length; i++) if (this.counts[i]) sparse.push(i, this.counts[i]!);
    return { counts: sparse, count: this.count, sumMs: this.sumMs, maxMs: this.maxMs };
  }

  static fromJSON(j: { counts: number[]; count: number; sumMs: number; maxMs: number }): LatencyHistogram {
    const h = new LatencyHistogram();
    for (let i = 0; i + 1 < j.counts.length; i += 2) h.counts[j.counts[i]!] = j.counts[i + 1]!;
    h.count = j.count;
    h.sumMs = j.sumMs;
    h.maxMs = j.maxMs;
    return h;
  }
}

function bucketOf(ms: number): number {
  if (ms < LINEAR_MS - 0.5) return Math.round(ms);
  const i = LINEAR_MS + Math.floor(Math.log(ms / LINEAR_MS) / Math.log(GROWTH));
  return Math.min(Math.max(i, LINEAR_MS), LINEAR_MS + LOG_BUCKETS - 1);
}

/** The value a bucket stands for: its millisecond below 1 s, its upper edge above. */
function valueOf(i: number): number {
  if (i < LINEAR_MS) return i;
  return LINEAR_MS * Math.pow(GROWTH, i - LINEAR_MS + 1);
}
