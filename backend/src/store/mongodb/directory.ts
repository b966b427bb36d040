/**
 * The room directory as this node sees it: which rooms `<prefix>rooms` lists (remembered once
 * known), and listing a room before its first message.
 */
import type { Collection } from 'mongodb';
import type { DatabaseCalls } from './calls.js';
import type { RoomDoc } from './documents.js';
import { ignoreInsertRace } from './errors.js';
import { SEQ_CACHE_ROOMS } from './max-seqs.js';

export class RoomDirectory {
  /** Rooms known to be listed in the directory (bounded as the max seqs; looked up again on use). */
  private readonly listed = new Set<string>();

  constructor(
    private readonly calls: DatabaseCalls,
    /** The directory's collection while the store is in use (throws otherwise). */
    private readonly collection: () => Collection<RoomDoc>,
  ) {}

  /**
   * Whether the room is in the directory: once known, from memory; otherwise one find by `_id`.
   * Not listed means no messages: the directory entry is written before the room's first one.
   */
  async isListed(room: string): Promise<boolean> {
    if (this.listed.has(room)) return true;
    const rooms = this.collection();
    const doc = await this.calls.op('find room', () =>
      rooms.findOne({ _id: room }, { projection: { _id: 1 }, maxTimeMS: this.calls.readLimitMs }),
    );
    if (doc) this.remember(room);
    return doc !== null;
  }

  /** Lists the room in the directory (an upsert that only inserts), before its first message. */
  async list(room: string): Promise<void> {
    if (this.listed.has(room)) return;
    const rooms = this.collection();
    // Two nodes listing the room at once: the other one did it.
    await this.calls.op('list room', () =>
      rooms
        .updateOne({ _id: room }, { $setOnInsert: { created: Date.now() } }, { upsert: true })
        .catch(ignoreInsertRace),
    );
    this.remember(room);
  }

  private remember(room: string): void {
    this.listed.delete(room);
    this.listed.add(room);
    if (this.listed.size > SEQ_CACHE_ROOMS) {
      const oldest = this.listed.values().next().value;
      if (oldest !== undefined) this.listed.delete(oldest);
    }
  }
}
