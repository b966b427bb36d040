/**
 * Growable columns in fixed-size chunks, indexed by a message number or a seq. The probe keeps one
 * of these per room (or per client for bits) instead of a Set per client: growing allocates one
 * small chunk instead of rehashing a table that holds everything so far (which, done by a thousand
 * Sets in lock-step, froze the old probe for 0.3 s), and a long-running canary drops the chunks it
 * no longer needs, so memory stays bounded.
 */

const CHUNK_BITS = 12;
const CHUNK = 1 << CHUNK_BITS; // 4096 entries per chunk
const MASK = CHUNK - 1;

/** A set of non-negative integers as bits, 512 bytes per 4096 consecutive values touched. */
export class ChunkedBits {
  private readonly chunks = new Map<number, Uint32Array>();
  private floor = 0;

  has(i: number): boolean {
    const chunk = this.chunks.get(i >>> CHUNK_BITS);
    return chunk !== undefined && (chunk[(i & MASK) >>> 5]! & (1 << (i & 31))) !== 0;
  }

  /** Sets bit i; returns whether it was set before. Values below the dropped floor are ignored. */
  set(i: number): boolean {
    if (i < this.floor || i < 0 || !Number.isSafeInteger(i)) return false;
    const c = Math.floor(i / CHUNK);
    let chunk = this.chunks.get(c);
    if (!chunk) {
      chunk = new Uint32Array(CHUNK / 32);
      this.chunks.set(c, chunk);
    }
    const word = (i & MASK) >>> 5;
    const bit = 1 << (i & 31);
    const before = (chunk[word]! & bit) !== 0;
    chunk[word] = chunk[word]! | bit;
    return before;
  }

  /** Forgets every value below `i` (rounded down to a chunk): memory bounded for long runs. */
  dropBelow(i: number): void {
    const keep = Math.floor(i / CHUNK);
    for (const c of this.chunks.keys()) if (c < keep) this.chunks.delete(c);
    this.floor = Math.max(this.floor, keep * CHUNK);
  }

  get chunkCount(): number {
    return this.chunks.size;
  }
}

/** An array of T indexed from 0 upwards, allocated 4096 slots at a time. */
export class ChunkedArray<T> {
  private readonly chunks: (T[] | undefined)[] = [];
  private dropped = 0;
  length = 0;

  constructor(private readonly fill: T) {}

  get(i: number): T {
    const chunk = this.chunks[i >>> CHUNK_BITS];
    return chunk === undefined ? this.fill : chunk[i & MASK]!;
  }

  set(i: number, value: T): void {
    const c = i >>> CHUNK_BITS;
    if (c < this.dropped) return;
    let chunk = this.chunks[c];
    if (!chunk) {
      chunk = new Array<T>(CHUNK).fill(this.fill);
      this.chunks[c] = chunk;
    }
    chunk[i & MASK] = value;
    if (i >= this.length) this.length = i + 1;
  }

  push(value: T): number {
    const i = this.length;
    this.set(i, value);
    return i;
  }

  /** Frees the chunks wholly below `i`; reading them gives the fill value afterwards. */
  dropBelow(i: number): void {
    const keep = Math.min(i >>> CHUNK_BITS, this.chunks.length);
    for (let c = this.dropped; c < keep; c++) this.chunks[c] = undefined;
    this.dropped = Math.max(this.dropped, keep);
  }

  /** The first index still held. */
  get start(): number {
    return this.dropped * CHUNK;
  }
}

/** Like ChunkedArray, for numbers, in Float64Array chunks (NaN = unset). */
export class ChunkedNumbers {
  private readonly chunks: (Float64Array | undefined)[] = [];
  private dropped = 0;
  length = 0;

  get(i: number): number {
    const chunk = this.chunks[i >>> CHUNK_BITS];
    return chunk === undefined ? Number.NaN : chunk[i & MASK]!;
  }

  set(i: number, value: number): void {
    const c = i >>> CHUNK_BITS;
    if (c < this.dropped) return;
    let chunk = this.chunks[c];
    if (!chunk) {
      chunk = new Float64Array(CHUNK).fill(Number.NaN);
      this.chunks[c] = chunk;
    }
    chunk[i & MASK] = value;
    if (i >= this.length) this.length = i + 1;
  }

  push(value: number): number {
    const i = this.length;
    this.set(i, value);
    return i;
  }

  add(i: number, delta: number): number {
    const v = (this.get(i) || 0) + delta;
    this.set(i, v);
    return v;
  }

  dropBelow(i: number): void {
    const keep = Math.min(i >>> CHUNK_BITS, this.chunks.length);
    for (let c = this.dropped; c < keep; c++) this.chunks[c] = undefined;
    this.dropped = Math.max(this.dropped, keep);
  }

  get start(): number {
    return this.dropped * CHUNK;
  }
}
