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
 *
 * This file is the store's face (lifecycle, reads, health); its parts are in mongodb/:
 * - options.ts: the options, their defaults, the logger;
 * - client.ts: the MongoClient's settings and listeners (command observer, slow commands);
 * - setup.ts: what open() sets up: the indexes, the epoch, the room directory of an older database;
 * - calls.ts: every database call, bounded, its failure mapped to StoreError, health recorded;
 * - documents.ts / errors.ts: the documents stored, and what the database's errors mean;
 * - directory.ts: the rooms this node knows to be listed, and listing a room;
 * - max-seqs.ts: the cached max seq per room, and the read that fills it;
 * - append-queues.ts: one write in flight per room, the appends queued behind it, flush();
 * - batch-writer.ts: storing one room's batch: seqs, duplicates (retries, seqs taken elsewhere);
 * - inserts.ts: the inserts shared by the batches of several rooms (group commit across rooms).
 */
import type { Collection, Filter, MongoClient } from 'mongodb';
import { StoreError } from './types.js';
import type { AppendInput, AppendResult, ChatMessage, HistoryQuery, MessageStore } from './types.js';
import { checkAppend, checkHistory, checkLimit, checkRoom } from './validate.js';
import { AppendQueues } from './mongodb/append-queues.js';
import { BatchWriter } from './mongodb/batch-writer.js';
import { DatabaseCalls } from './mongodb/calls.js';
import { StoreLifecycle, type StoreState } from './store-lifecycle.js';
import { createClient } from './mongodb/client.js';
import { RoomDirectory } from './mongodb/directory.js';
import { toMessage } from './mongodb/documents.js';
import type { MessageDoc, RoomDoc } from './mongodb/documents.js';
import { errText } from './mongodb/errors.js';
import { SharedInserts } from './mongodb/inserts.js';
import { MaxSeqs } from './mongodb/max-seqs.js';
import { describeWhere, noLog, resolveOptions } from './mongodb/options.js';
import type { MongoMessageStoreOptions, ResolvedOptions, StoreLogger } from './mongodb/options.js';
import { prepareDatabase } from './mongodb/setup.js';

export type { MongoMessageStoreOptions, StoreLogger } from './mongodb/options.js';

export class MongoMessageStore implements MessageStore {
  readonly kind = 'mongodb';
  private readonly opts: ResolvedOptions;
  private readonly commandObserver: MongoMessageStoreOptions['commandObserver'];
  private readonly log: StoreLogger;
  private client: MongoClient | undefined;
  private coll: Collection<MessageDoc> | undefined;
  private rooms: Collection<RoomDoc> | undefined;
  private readonly life: StoreLifecycle;
  private _epoch = '';
  private readonly calls: DatabaseCalls;
  private readonly directory: RoomDirectory;
  private readonly maxSeqs: MaxSeqs;
  private readonly appends: AppendQueues;

  constructor(options: MongoMessageStoreOptions) {
    this.opts = resolveOptions(options);
    this.log = options.logger ?? noLog;
    this.life = new StoreLifecycle(`mongodb store (${this.where})`);
    this.commandObserver = options.commandObserver;
    this.calls = new DatabaseCalls(this.opts, this.log, this.where, () => this.state);
    this.directory = new RoomDirectory(this.calls, () => this.roomsInUse());
    this.maxSeqs = new MaxSeqs(this.calls, this.directory, () => this.inUse());
    const inserts = new SharedInserts(this.opts, this.calls, () => this.inUse());
    const writer = new BatchWriter({
      opts: this.opts,
      log: this.log,
      where: this.where,
      calls: this.calls,
      maxSeqs: this.maxSeqs,
      // Through the store's own method, which a test replaces to lose every race for a seq.
      readMaxSeq: (room, trustDirectory) => this.readMaxSeq(room, trustDirectory),
      directory: this.directory,
      insert: this.opts.batching ? (docs) => inserts.insertShared(docs) : (docs) => inserts.insertAlone(docs),
      messages: () => this.inUse(),
    });
    this.appends = new AppendQueues(
      this.opts.batching ? this.opts.maxBatch : 1,
      (room, batch) => writer.writeBatch(room, batch),
      this.log,
    );
  }

  /** The connection string without credentials, for messages and logs. */
  get where(): string {
    return describeWhere(this.opts);
  }

  open(): Promise<void> {
    return this.life.open(() => this.connect());
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
      this.calls.lastOpFailed = false;
    } catch (err) {
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
    return this.appends.add(checked);
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
    return this.appends.flush();
  }

  close(): Promise<void> {
    return this.life.close(
      () => this.flush(),
      async () => this.client?.close(),
    );
  }

  private get state(): StoreState {
    return this.life.state;
  }

  /** The room's highest stored seq, from the database unless cached (see MaxSeqs.read). */
  private readMaxSeq(room: string, trustDirectory = true): Promise<number> {
    return this.maxSeqs.read(room, trustDirectory);
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

  /** The room directory's collection, on the same terms as inUse(). */
  private roomsInUse(): Collection<RoomDoc> {
    this.inUse();
    return this.rooms!;
  }
}
