/**
 * Storing one batch of one room: seqs from the room's cached max, the insert, and what a
 * duplicate-key error means (a retry of a stored message, settled as a duplicate, or a seq another
 * node took: re-read the max and go on).
 */
import { randomUUID } from 'node:crypto';
import type { Collection } from 'mongodb';
import { StoreError } from '../types.js';
import type { AppendInput, ChatMessage } from '../types.js';
import { buildMessage } from '../validate.js';
import type { Pending } from './append-queues.js';
import type { DatabaseCalls } from './calls.js';
import type { RoomDirectory } from './directory.js';
import { toDoc, toMessage } from './documents.js';
import type { MessageDoc } from './documents.js';
import type { InsertOutcome } from './inserts.js';
import type { MaxSeqs } from './max-seqs.js';
import type { ResolvedOptions, StoreLogger } from './options.js';

/** Appends of one batch sharing a clientMsgId: the first decides, the others get its message as duplicates. */
interface Group {
  input: AppendInput;
  id: string;
  callers: Pending[];
}

export interface BatchWriterDeps {
  opts: Pick<ResolvedOptions, 'precheck' | 'maxConflicts'>;
  log: StoreLogger;
  where: string;
  calls: DatabaseCalls;
  maxSeqs: MaxSeqs;
  /** The room's max seq from the database, when not cached (MaxSeqs.read, by way of the store). */
  readMaxSeq(room: string, trustDirectory: boolean): Promise<number>;
  directory: RoomDirectory;
  /** One room's documents into the database: a shared insert, or one of their own. */
  insert(docs: MessageDoc[]): Promise<InsertOutcome>;
  /** The messages collection while the store is open or draining (throws otherwise). */
  messages(): Collection<MessageDoc>;
}

export class BatchWriter {
  constructor(private readonly deps: BatchWriterDeps) {}

  /** Stores one batch of one room; settles every caller and never throws. */
  async writeBatch(room: string, batch: Pending[]): Promise<void> {
    const { opts, calls, maxSeqs } = this.deps;
    const groups = new Map<string, Group>();
    for (const p of batch) {
      const g = groups.get(p.input.clientMsgId);
      if (g) g.callers.push(p);
      else groups.set(p.input.clientMsgId, { input: p.input, id: randomUUID(), callers: [p] });
    }
    let todo = [...groups.values()];
    try {
      const coll = this.deps.messages();
      if (opts.precheck && todo.length > 1) todo = await this.dropStored(coll, room, todo);
      let conflicts = 0;
      let untried = 0;
      while (todo.length > 0) {
        const base = maxSeqs.get(room) ?? (await this.deps.readMaxSeq(room, conflicts === 0));
        if (base === 0) await this.deps.directory.list(room);
        const messages = todo.map((g, i) => buildMessage(g.input, base + 1 + i, g.id));
        const docs = messages.map(toDoc);
        const { stored, duplicateAt: dupAt } = await this.deps.insert(docs);
        todo.slice(0, stored).forEach((g, i) => settle(g, messages[i]!, false));
        if (stored > 0) maxSeqs.remember(room, base + stored);
        if (stored === docs.length) return;
        if (dupAt === undefined) {
          // Another room's document ahead of these in the shared insert failed: none of the rest
          // was tried. Again, with the same seqs (bounded, as conflicts are).
          todo = todo.slice(stored);
          if (++untried > opts.maxConflicts) {
            throw new StoreError('UNAVAILABLE', `room ${JSON.stringify(room)}: inserts kept failing`);
          }
          continue;
        }

        // Which key refused document dupAt? One lookup by clientMsgId (the error names no index
        // on FerretDB) finds it, and any other retry in the rest of the batch, if they are stored;
        // if it is not, the seq was taken by another node: re-read the max and go on.
        todo = todo.slice(dupAt);
        const clash = todo[0];
        todo = await this.dropStored(coll, room, todo);
        if (todo[0] !== clash) continue;
        maxSeqs.forget(room);
        if (++conflicts > opts.maxConflicts) {
          this.deps.log.warn(
            { room, conflicts, store: this.deps.where },
            'message store: too many seq conflicts',
          );
          throw new StoreError(
            'UNAVAILABLE',
            `room ${JSON.stringify(room)}: gave up after ${conflicts - 1} seq conflicts with other nodes`,
          );
        }
        if (conflicts > 2) await sleep(Math.random() * Math.min(50, 2 ** conflicts));
      }
    } catch (err) {
      // The outcome of a failed write is unknown (it may have been stored): forget the cached max,
      // and let the caller retry with the same clientMsgId, which the unique index makes safe.
      maxSeqs.forget(room);
      const failure = calls.failure(err);
      for (const g of todo) for (const p of g.callers) p.reject(failure);
    }
  }

  /** One find on room_clientMsgId: settles the groups already stored as duplicates, returns the rest. */
  private async dropStored(coll: Collection<MessageDoc>, room: string, todo: Group[]): Promise<Group[]> {
    const ids = todo.map((g) => g.input.clientMsgId);
    const filter = ids.length === 1 ? { room, clientMsgId: ids[0]! } : { room, clientMsgId: { $in: ids } };
    return settleStored(
      todo,
      await this.deps.calls.op('find by clientMsgId', () =>
        coll.find(filter, { maxTimeMS: this.deps.calls.readLimitMs }).toArray(),
      ),
    );
  }
}

/** Settles the groups whose clientMsgId is already stored as duplicates; returns the others. */
function settleStored(todo: Group[], existing: MessageDoc[]): Group[] {
  const byClientId = new Map(existing.map((d) => [d.clientMsgId, toMessage(d)]));
  return todo.filter((g) => {
    const original = byClientId.get(g.input.clientMsgId);
    if (original) settle(g, original, true);
    return !original;
  });
}

function settle(group: Group, message: ChatMessage, duplicate: boolean): void {
  group.callers.forEach((p, i) => p.resolve({ message, duplicate: duplicate || i > 0 }));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
