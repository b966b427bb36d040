/**
 * MongoMessageStore: any MongoDB-wire database (MongoDB, FerretDB), shared by several nodes.
 *
 * One document per message in `<prefix>messages`, `_id` = `<room>#<seq>`, and two unique indexes
 * created by open(): `room_seq (room, seq)` and `room_clientMsgId (room, clientMsgId)`; and the
 * room directory `<prefix>rooms`, one document per room that has messages (`_id` = the room),
 * written before the room's first message. Every operation is one or two indexed commands
 * (docs/store.md has the table):
 * - append batch: one ordered insertMany, no reads, with seqs from the room's cached max (a room's
 *   first batch: one upsert of its directory entry first);
 * - the room's max seq on first use (a takeover): one find by `_id` in the directory, and for a
 *   room listed there one find sorted by seq descending, limit 1. A room that is not listed has no
 *   messages: a new room costs the database no read of the messages at all, which matters where
 *   reads of a large collection are dear (FerretDB 1.24 scans it for every query);
 * - history / latest: one find with a seq range, a sort and a limit;
 * - a duplicate-key error at document j: one find by (room, clientMsgId $in) tells a retry of a
 *   stored message (settled as a duplicate) from a seq another node took (re-read the max).
 *
 * Appends to one room are serialized in this process (one write in flight per room) so that the
 * process never races itself for seqs; with batching on, everything queued for the room while a
 * write is in flight goes out with consecutive seqs (group commit), and the batches of every room
 * that are ready together go out in one ordered insertMany, at most `maxInsertsInFlight` of them
 * at a time (group commit across rooms): a node with 50 busy rooms sends the database a few
 * write transactions at a time, not 50. Measured on FerretDB 1.24 (SQLite), 50 rooms at 500
 * msg/s on 3 nodes: one insert per room batch left 2 % of appends over 250 ms (the writes queue
 * for SQLite's one writer).
 * No transactions and no change streams: FerretDB has neither. Recent history is served from
 * memory by RecentTailStore (recent-tail.ts) in front of this store, not here.
 */
import { randomUUID } from 'node:crypto';
import type { Collection, Filter, MongoClient } from 'mongodb';
import { StoreError } from './types.js';
import type { AppendInput, AppendResult, ChatMessage, HistoryQuery, MessageStore } from './types.js';
import { buildMessage, checkAppend, checkHistory, checkLimit, checkRoom } from './validate.js';
import { DatabaseCalls } from './mongodb/calls.js';
import type { StoreState } from './mongodb/calls.js';
import { createClient } from './mongodb/client.js';
import { RoomDirectory } from './mongodb/directory.js';
import { toDoc, toMessage } from './mongodb/documents.js';
import type { MessageDoc, RoomDoc } from './mongodb/documents.js';
import { duplicateIndex, errText } from './mongodb/errors.js';
import { MaxSeqs } from './mongodb/max-seqs.js';
import { describeWhere, noLog, resolveOptions } from './mongodb/options.js';
import type { MongoMessageStoreOptions, ResolvedOptions, StoreLogger } from './mongodb/options.js';
import { prepareDatabase } from './mongodb/setup.js';

export type { MongoMessageStoreOptions, StoreLogger } from './mongodb/options.js';

interface Pending {
  input: AppendInput;
  resolve(result: AppendResult): void;
  reject(err: unknown): void;
}

/** Appends of one batch sharing a clientMsgId: the first decides, the others get its message as duplicates. */
interface Group {
  input: AppendInput;
  id: string;
  callers: Pending[];
}

interface RoomQueue {
  items: Pending[];
}

export class MongoMessageStore implements MessageStore {
  readonly kind = 'mongodb';
  private readonly opts: ResolvedOptions;
  private readonly commandObserver: MongoMessageStoreOptions['commandObserver'];
  private readonly log: StoreLogger;
  private client: MongoClient | undefined;
  private coll: Collection<MessageDoc> | undefined;
  private rooms: Collection<RoomDoc> | undefined;
  private state: StoreState = 'new';
  private _epoch = '';
  private opening: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private readonly queues = new Map<string, RoomQueue>();
  private pending = 0;
  /** Room batches waiting for a shared insert, and the inserts out now. */
  private readonly inserts: InsertRequest[] = [];
  private insertsOut = 0;
  private insertPumpDue = false;
  private idleWaiters: Array<() => void> = [];
  private readonly calls: DatabaseCalls;
  private readonly directory: RoomDirectory;
  private readonly maxSeqs: MaxSeqs;

  constructor(options: MongoMessageStoreOptions) {
    this.opts = resolveOptions(options);
    this.log = options.logger ?? noLog;
    this.commandObserver = options.commandObserver;
    this.calls = new DatabaseCalls(this.opts, this.log, this.where, () => this.state);
    this.directory = new RoomDirectory(this.calls, () => this.roomsInUse());
    this.maxSeqs = new MaxSeqs(this.calls, this.directory, () => this.inUse());
  }

  /** The connection string without credentials, for messages and logs. */
  get where(): string {
    return describeWhere(this.opts);
  }

  open(): Promise<void> {
    if (this.state !== 'new') {
      return Promise.reject(new StoreError('CLOSED', `mongodb store (${this.where}) was already opened`));
    }
    this.state = 'opening';
    this.opening = this.connect();
    return this.opening;
  }

  private async connect(): Promise<void> {
    const client = createClient(this.opts, this.commandObserver, this.log, (desc) =>
      this.calls.onTopology(desc),
    );
    try {
      await client.connect();
      const { messages, rooms, epoch } = await prepareDatabase(client, this.opts, this.log);
      this._epoch = epoch;
      this.client = client;
      this.coll = messages;
      this.rooms = rooms;
      this.state = 'open';
      this.calls.lastOpFailed = false;
    } catch (err) {
      this.state = 'closed';
      await client.close().catch(() => undefined); // the open's failure is the one to report
      throw new StoreError('UNAVAILABLE', `cannot open mongodb store (${this.where}): ${errText(err)}`, {
        cause: err,
      });
    }
  }

  append(input: AppendInput): Promise<AppendResult> {
    let checked: AppendInput;
    try {
      this.requireOpen();
      checked = checkAppend(input);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<AppendResult>((resolve, reject) => {
      this.pending++;
      let settled = false;
      const done = (): void => {
        settled = true;
        // After the callers' own continuations: flush() means "their outcomes are known".
        if (--this.pending === 0) setImmediate(() => this.wakeIdleWaiters());
      };
      const item: Pending = {
        input: checked,
        resolve: (r) => {
          if (settled) return;
          resolve(r);
          done();
        },
        reject: (e) => {
          if (settled) return;
          reject(e);
          done();
        },
      };
      const queue = this.queues.get(checked.room);
      if (queue) {
        queue.items.push(item);
        return;
      }
      const fresh: RoomQueue = { items: [item] };
      this.queues.set(checked.room, fresh);
      // One macrotask of waiting lets the appends of this tick share the first write.
      setImmediate(() => {
        void this.drainRoom(checked.room, fresh).catch((err: unknown) =>
          this.log.warn(
            { room: checked.room, err: String(err) },
            'message store: writing the appends of a room failed',
          ),
        );
      });
    });
  }

  /** One find: the seq range, sorted along room_seq, limited (none for a room not listed). */
  async history(room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    const coll = this.requireOpen();
    checkRoom(room);
    const { afterSeq, beforeSeq, limit } = checkHistory(query);
    if (!(await this.directory.isListed(room))) return [];
    const seq: { $gt?: number; $lt?: number } = {};
    if (afterSeq !== undefined) seq.$gt = afterSeq;
    if (beforeSeq !== undefined) seq.$lt = beforeSeq;
    const filter: Filter<MessageDoc> = Object.keys(seq).length > 0 ? { room, seq } : { room };
    // Only beforeSeq: the newest `limit` below it, read backwards along the index.
    const backwards = afterSeq === undefined && beforeSeq !== undefined;
    const docs = await this.calls.op('find history', () =>
      coll
        .find(filter, { maxTimeMS: this.calls.readLimitMs })
        .sort({ seq: backwards ? -1 : 1 })
        .limit(limit)
        .toArray(),
    );
    if (backwards) docs.reverse();
    return docs.map(toMessage);
  }

  /** One find, newest first along room_seq; it also tells the room's max seq. */
  async latest(room: string, limit: number): Promise<ChatMessage[]> {
    const coll = this.requireOpen();
    checkRoom(room);
    checkLimit(limit);
    if (!(await this.directory.isListed(room))) {
      this.maxSeqs.remember(room, 0);
      return [];
    }
    const docs = await this.calls.op('find latest', () =>
      coll.find({ room }, { maxTimeMS: this.calls.readLimitMs }).sort({ seq: -1 }).limit(limit).toArray(),
    );
    this.maxSeqs.remember(room, docs[0]?.seq ?? 0);
    docs.reverse();
    return docs.map(toMessage);
  }

  async lastSeq(room: string): Promise<number> {
    this.requireOpen();
    checkRoom(room);
    return this.readMaxSeq(room);
  }

  epoch(): string {
    return this._epoch;
  }

  isHealthy(): boolean {
    return this.state === 'open' && this.calls.reachable();
  }

  flush(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wakeIdleWaiters(): void {
    if (this.pending === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    await this.opening?.catch(() => undefined); // its failure went to open()'s caller
    if (this.state !== 'open') {
      this.state = 'closed';
      return;
    }
    this.state = 'closing';
    await this.flush();
    this.state = 'closed';
    await this.client?.close();
  }

  private requireOpen(): Collection<MessageDoc> {
    if (this.state !== 'open' || !this.coll) {
      throw new StoreError(
        'CLOSED',
        `mongodb store (${this.where}) is ${this.state === 'new' || this.state === 'opening' ? 'not open' : 'closed'}`,
      );
    }
    return this.coll;
  }

  /** The collection while open or draining for close(): queued appends still go out. */
  private inUse(): Collection<MessageDoc> {
    if ((this.state !== 'open' && this.state !== 'closing') || !this.coll) {
      throw new StoreError('CLOSED', `mongodb store (${this.where}) is closed`);
    }
    return this.coll;
  }

  /** The room's highest stored seq, from the database unless cached (see MaxSeqs.read). */
  private readMaxSeq(room: string, trustDirectory = true): Promise<number> {
    return this.maxSeqs.read(room, trustDirectory);
  }

  /** The room directory's collection, on the same terms as inUse(). */
  private roomsInUse(): Collection<RoomDoc> {
    this.inUse();
    return this.rooms!;
  }

  /** One find on room_clientMsgId: settles the groups already stored as duplicates, returns the rest. */
  private async dropStored(coll: Collection<MessageDoc>, room: string, todo: Group[]): Promise<Group[]> {
    const ids = todo.map((g) => g.input.clientMsgId);
    const filter = ids.length === 1 ? { room, clientMsgId: ids[0]! } : { room, clientMsgId: { $in: ids } };
    return settleStored(
      todo,
      await this.calls.op('find by clientMsgId', () =>
        coll.find(filter, { maxTimeMS: this.calls.readLimitMs }).toArray(),
      ),
    );
  }

  private async drainRoom(room: string, queue: RoomQueue): Promise<void> {
    while (queue.items.length > 0) {
      const batch = queue.items.splice(0, this.opts.batching ? this.opts.maxBatch : 1);
      await this.writeBatch(room, batch);
    }
    this.queues.delete(room);
  }

  /** Stores one batch of one room; settles every caller and never throws. */
  private async writeBatch(room: string, batch: Pending[]): Promise<void> {
    const groups = new Map<string, Group>();
    for (const p of batch) {
      const g = groups.get(p.input.clientMsgId);
      if (g) g.callers.push(p);
      else groups.set(p.input.clientMsgId, { input: p.input, id: randomUUID(), callers: [p] });
    }
    let todo = [...groups.values()];
    try {
      const coll = this.inUse();
      if (this.opts.precheck && todo.length > 1) todo = await this.dropStored(coll, room, todo);
      let conflicts = 0;
      let untried = 0;
      while (todo.length > 0) {
        const base = this.maxSeqs.get(room) ?? (await this.readMaxSeq(room, conflicts === 0));
        if (base === 0) await this.directory.list(room);
        const messages = todo.map((g, i) => buildMessage(g.input, base + 1 + i, g.id));
        const docs = messages.map(toDoc);
        const { stored, duplicateAt: dupAt } = this.opts.batching
          ? await this.insertShared(docs)
          : await this.insertAlone(docs);
        todo.slice(0, stored).forEach((g, i) => settle(g, messages[i]!, false));
        if (stored > 0) this.maxSeqs.remember(room, base + stored);
        if (stored === docs.length) return;
        if (dupAt === undefined) {
          // Another room's document ahead of these in the shared insert failed: none of the rest
          // was tried. Again, with the same seqs (bounded, as conflicts are).
          todo = todo.slice(stored);
          if (++untried > this.opts.maxConflicts) {
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
        this.maxSeqs.forget(room);
        if (++conflicts > this.opts.maxConflicts) {
          this.log.warn({ room, conflicts, store: this.where }, 'message store: too many seq conflicts');
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
      this.maxSeqs.forget(room);
      const failure = this.calls.failure(err);
      for (const g of todo) for (const p of g.callers) p.reject(failure);
    }
  }

  /** One room's documents in an insert of their own (batching off): a group of one. */
  private insertAlone(docs: MessageDoc[]): Promise<InsertOutcome> {
    return new Promise<InsertOutcome>((resolve, reject) => {
      this.insertGroup([{ docs, resolve, reject }]).catch(reject);
    });
  }

  /**
   * One room's documents in an ordered insert shared with the other rooms' batches that are ready
   * at the same time. Rejects as an insert of its own would; a duplicate-key error at another
   * room's document stops the insert there, so this room's documents after it were not tried.
   */
  private insertShared(docs: MessageDoc[]): Promise<InsertOutcome> {
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
      const coll = this.inUse();
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

/** What one room's documents became in an insert: the first `stored` are in; a duplicate key refused the next. */
interface InsertOutcome {
  stored: number;
  duplicateAt?: number;
}

interface InsertRequest {
  docs: MessageDoc[];
  resolve(outcome: InsertOutcome): void;
  reject(err: unknown): void;
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
