/**
 * Group commit across rooms: the batches of every room that are ready together go out in one
 * ordered insert, at most `maxInsertsInFlight` such inserts out at a time, each of at most
 * `maxInsertDocs` documents (a room's batch is never split). A duplicate-key error is told back to
 * the room whose document it hit; the rooms after it in the insert were not tried.
 */
import type { Collection } from 'mongodb';
import type { StoreError } from '../types.js';
import type { DatabaseCalls } from './calls.js';
import type { MessageDoc } from './documents.js';
import { duplicateIndex } from './errors.js';
import type { ResolvedOptions } from './options.js';

/** What one room's documents became in an insert: the first `stored` are in; a duplicate key refused the next. */
export interface InsertOutcome {
  stored: number;
  duplicateAt?: number;
}

interface InsertRequest {
  docs: MessageDoc[];
  resolve(outcome: InsertOutcome): void;
  reject(err: unknown): void;
}

export class SharedInserts {
  /** Room batches waiting for a shared insert, and the inserts out now. */
  private readonly inserts: InsertRequest[] = [];
  private insertsOut = 0;
  private insertPumpDue = false;

  constructor(
    private readonly opts: Pick<ResolvedOptions, 'maxInsertsInFlight' | 'maxInsertDocs'>,
    private readonly calls: DatabaseCalls,
    /** The messages collection while the store is in use (throws otherwise). */
    private readonly messages: () => Collection<MessageDoc>,
  ) {}

  /** One room's documents in an insert of their own (batching off): a group of one. */
  insertAlone(docs: MessageDoc[]): Promise<InsertOutcome> {
    return new Promise<InsertOutcome>((resolve, reject) => {
      this.insertGroup([{ docs, resolve, reject }]).catch(reject);
    });
  }

  /**
   * One room's documents in an ordered insert shared with the other rooms' batches that are ready
   * at the same time. Rejects as an insert of its own would; a duplicate-key error at another
   * room's document stops the insert there, so this room's documents after it were not tried.
   */
  insertShared(docs: MessageDoc[]): Promise<InsertOutcome> {
    return new Promise<InsertOutcome>((resolve, reject) => {
      this.inserts.push({ docs, resolve, reject });
      // One macrotask of waiting lets the rooms whose writes start in this tick share an insert.
      if (this.insertPumpDue) return;
      this.insertPumpDue = true;
      setImmediate(() => {
        this.insertPumpDue = false;
        this.pumpInserts();
      });
    });
  }

  private pumpInserts(): void {
    while (this.insertsOut < this.opts.maxInsertsInFlight && this.inserts.length > 0) {
      const group: InsertRequest[] = [];
      let count = 0;
      for (;;) {
        const next = this.inserts[0];
        if (!next || (group.length > 0 && count + next.docs.length > this.opts.maxInsertDocs)) break;
        group.push(this.inserts.shift()!);
        count += next.docs.length;
      }
      this.insertsOut++;
      const done = (): void => {
        this.insertsOut--;
        this.pumpInserts();
      };
      this.insertGroup(group).then(done, done);
    }
  }

  /** Sends one ordered insert for every room batch of `group` and settles each; never throws. */
  private async insertGroup(group: InsertRequest[]): Promise<void> {
    const all = group.length === 1 ? group[0]!.docs : group.flatMap((r) => r.docs);
    try {
      const coll = this.messages();
      await this.calls.op<unknown>('insert', () =>
        all.length === 1 ? coll.insertOne(all[0]!) : coll.insertMany(all, { ordered: true }),
      );
      for (const r of group) r.resolve({ stored: r.docs.length });
    } catch (err) {
      const at = duplicateIndex((err as StoreError).cause, all.length);
      if (at === undefined) {
        for (const r of group) r.reject(err);
        return;
      }
      this.calls.lastOpFailed = false;
      let start = 0;
      for (const r of group) {
        const end = start + r.docs.length;
        if (at >= end) r.resolve({ stored: r.docs.length });
        else if (at >= start) r.resolve({ stored: at - start, duplicateAt: at - start });
        else r.resolve({ stored: 0 });
        start = end;
      }
    }
  }
}
