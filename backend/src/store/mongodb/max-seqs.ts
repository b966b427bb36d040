/**
 * Max-seq bookkeeping: the highest seq known to be stored per room, which appends number from, and
 * the read that finds it on a room's first use on this node (a takeover).
 */
import type { Collection } from 'mongodb';
import type { DatabaseCalls } from './calls.js';
import type { RoomDirectory } from './directory.js';
import type { MessageDoc } from './documents.js';

/** Rooms whose max seq we remember; beyond this the oldest entries are dropped (and re-read on use). */
export const SEQ_CACHE_ROOMS = 10_000;

export class MaxSeqs {
  /** Highest seq known to be stored per room: never above the real max, so max + 1 leaves no gap. */
  private readonly known = new Map<string, number>();

  constructor(
    private readonly calls: DatabaseCalls,
    private readonly directory: RoomDirectory,
    /** The messages collection while the store is in use (throws otherwise). */
    private readonly messages: () => Collection<MessageDoc>,
  ) {}

  get(room: string): number | undefined {
    return this.known.get(room);
  }

  /** After a write whose outcome is unknown, or a seq another node took: read again on next use. */
  forget(room: string): void {
    this.known.delete(room);
  }

  /** Forgets every room: each one's next append reads its max again. */
  clear(): void {
    this.known.clear();
  }

  /**
   * The room's highest stored seq: for a room in the directory, one find on room_seq, newest first,
   * limit 1. `trustDirectory` false reads the messages whatever the directory says (after a seq
   * conflict: a node of an older version, without the directory, may have written the room) and
   * lists a room found to have messages.
   */
  async read(room: string, trustDirectory = true): Promise<number> {
    const coll = this.messages();
    if (trustDirectory && !(await this.directory.isListed(room))) {
      this.remember(room, 0);
      return 0;
    }
    const top = await this.calls.op('find max seq', () =>
      coll
        .find({ room }, { projection: { _id: 0, seq: 1 }, maxTimeMS: this.calls.readLimitMs })
        .sort({ seq: -1 })
        .limit(1)
        .toArray(),
    );
    const max = top[0]?.seq ?? 0;
    if (max > 0 && !trustDirectory) await this.directory.list(room);
    this.remember(room, max);
    return max;
  }

  remember(room: string, seq: number): void {
    const known = this.known.get(room);
    if (known !== undefined && known >= seq) return;
    this.known.delete(room);
    this.known.set(room, seq);
    if (this.known.size > SEQ_CACHE_ROOMS) {
      const oldest = this.known.keys().next().value;
      if (oldest !== undefined) this.known.delete(oldest);
    }
  }
}
