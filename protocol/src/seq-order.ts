/**
 * A room's messages in seq order, each once: the ordering core that the client library's rooms
 * and the server's gRPC Join stream both run. Live messages may come out of order or with gaps
 * (they wait here); lists read from the store (a join's catch-up, a history page) are
 * authoritative, so a seq such a list skips is a hole and the order moves past it. Every method
 * returns the messages that became deliverable, in order; the caller delivers them and fetches
 * history for gaps itself.
 */
export class SeqOrder<M extends { seq: number }> {
  private readonly buffer = new Map<number, M>();

  /** `cursor`: the highest seq delivered (undefined: not known yet, everything waits). */
  constructor(private cursor: number | undefined = undefined) {}

  /** The highest seq delivered; undefined until placed. */
  get lastSeq(): number | undefined {
    return this.cursor;
  }

  /** How many live messages wait behind a gap. */
  get waiting(): number {
    return this.buffer.size;
  }

  has(seq: number): boolean {
    return this.buffer.has(seq);
  }

  /** The highest seq waiting, if any. */
  highestWaiting(): number | undefined {
    let max: number | undefined;
    for (const seq of this.buffer.keys()) if (max === undefined || seq > max) max = seq;
    return max;
  }

  /** Places the cursor once it is known; what waits at or below it is dropped (delivered already). */
  place(cursor: number): void {
    this.cursor = cursor;
    for (const seq of this.buffer.keys()) if (seq <= cursor) this.buffer.delete(seq);
  }

  /** Forgets everything: another history starts (the cursor is placed again). */
  reset(): void {
    this.cursor = undefined;
    this.buffer.clear();
  }

  /**
   * A live message: it and whatever waited right after it, when it continues the cursor; else
   * nothing (it waits behind a gap, or was delivered already).
   */
  live(m: M): M[] {
    if (this.cursor !== undefined && m.seq <= this.cursor) return [];
    if (this.cursor === undefined || m.seq !== this.cursor + 1) {
      this.buffer.set(m.seq, m);
      return [];
    }
    const out: M[] = [];
    this.take(m, out);
    this.drain(out);
    return out;
  }

  /**
   * An authoritative list, in seq order, merged in. A waiting live message below one of the
   * list's goes first (never out of order, never lost). `target`: the highest live seq seen before
   * the list was asked for; when the list is the end of the room, nothing below it can still come,
   * so what waits up to it goes, past any hole.
   */
  merge(list: readonly M[], target?: number): M[] {
    const out: M[] = [];
    if (this.cursor === undefined) return out;
    for (const m of list) {
      if (m.seq <= this.cursor) continue;
      this.flush(m.seq - 1, out);
      if (m.seq > this.cursor) this.take(m, out);
    }
    if (target !== undefined) this.flush(target, out);
    for (const seq of this.buffer.keys()) if (seq <= this.cursor) this.buffer.delete(seq);
    this.drain(out);
    return out;
  }

  private take(m: M, out: M[]): void {
    this.cursor = m.seq;
    this.buffer.delete(m.seq);
    out.push(m);
  }

  /** What waits right after the cursor. */
  private drain(out: M[]): void {
    for (let next = this.buffer.get(this.cursor! + 1); next; next = this.buffer.get(this.cursor! + 1)) {
      this.take(next, out);
    }
  }

  /** What waits up to `upTo`, in order, past holes. */
  private flush(upTo: number, out: M[]): void {
    const seqs = [...this.buffer.keys()].filter((s) => s > this.cursor! && s <= upTo).sort((a, b) => a - b);
    for (const s of seqs) this.take(this.buffer.get(s)!, out);
  }
}
