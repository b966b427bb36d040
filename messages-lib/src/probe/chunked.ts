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

interface Chunk<T> {
  [i: number]: T;
}

/**
 * Values of T indexed from 0 upwards, allocated 4096 slots at a time; what a chunk is (a plain
 * array, a typed array) is the subclass's.
 */
abstract class ChunkedColumn<T, C extends Chunk<T>> {
  private readonly chunks: (C | undefined)[] = [];
  private dropped = 0;
  length = 0;

  constructor(protected readonly fill: T) {}

  /** A new chunk of CHUNK slots, each holding the fill value. */
  protected abstract newChunk(): C;

  get(i: number): T {
    const chunk = this.chunks[i >>> CHUNK_BITS];
    return chunk === undefined ? this.fill : chunk[i & MASK]!;
  }

  set(i: number, value: T): void {
    const c = i >>> CHUNK_BITS;
    if (c < this.dropped) return;
    let chunk = this.chunks[c];
    if (!chunk) {
      chunk = this.newChunk();
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

/** An array of T indexed from 0 upwards, allocated 4096 slots at a time. */
export class ChunkedArray<T> extends ChunkedColumn<T, T[]> {
  protected newChunk(): T[] {
    return new Array<T>(CHUNK).fill(this.fill);
  }
}

type NumberArray = Float64Array | Int32Array | Int8Array;
type NumberArrayCtor = new (length: number) => NumberArray;

/**
 * Like ChunkedArray, for numbers, in typed-array chunks: Float64Array by default (unset = NaN), or
 * a narrower type with its own unset value where the numbers fit (message keys, counts, states).
 */
export class ChunkedNumbers extends ChunkedColumn<number, NumberArray> {
  constructor(
    private readonly ctor: NumberArrayCtor = Float64Array,
    fill = Number.NaN,
  ) {
    super(fill);
  }

  protected newChunk(): NumberArray {
    const chunk = new this.ctor(CHUNK);
    if (this.fill !== 0) chunk.fill(this.fill);
    return chunk;
  }

  add(i: number, delta: number): number {
    const v = (this.get(i) || 0) + delta;
    this.set(i, v);
    return v;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * clientMsgIds by message key, 16 bytes each: a UUID (what messages-lib generates) is kept as its
 * 128 bits, not as the string. (The strings crypto.randomUUID returns hold on to about 490 bytes
 * each; kept for every message of a long run they were most of the probe's memory.) Anything else
 * (tests, hand-made ids) is kept as a string.
 */
export class ClientMsgIdColumn {
  private readonly words = [0, 1, 2, 3].map(() => new ChunkedNumbers(Int32Array, 0));
  private readonly other = new Map<number, string>();

  set(key: number, id: string): void {
    const w = uuidWords(id);
    if (!w) {
      this.other.set(key, id);
      return;
    }
    for (let i = 0; i < 4; i++) this.words[i]!.set(key, w[i]!);
  }

  get(key: number): string {
    const other = this.other.get(key);
    if (other !== undefined) return other;
    const hex = this.words.map((c) => (c.get(key) >>> 0).toString(16).padStart(8, '0')).join('');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  matches(key: number, id: string): boolean {
    const other = this.other.get(key);
    if (other !== undefined) return other === id;
    const w = uuidWords(id);
    return w !== undefined && w.every((x, i) => this.words[i]!.get(key) === x);
  }

  dropBelow(key: number): void {
    for (const c of this.words) c.dropBelow(key);
    for (const k of this.other.keys()) if (k < key) this.other.delete(k);
  }

  get otherCount(): number {
    return this.other.size;
  }
}

function uuidWords(id: string): number[] | undefined {
  const s = id.toLowerCase();
  if (!UUID.test(s)) return undefined;
  const hex = s.replace(/-/g, '');
  return [0, 8, 16, 24].map((i) => Number.parseInt(hex.slice(i, i + 8), 16) | 0);
}
