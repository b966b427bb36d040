/**
 * MongoMessageStore: any MongoDB-wire database (MongoDB, FerretDB), shared by several nodes.
 *
 * One document per message in `<prefix>messages`, `_id` = `<room>#<seq>` (so seqs are unique per
 * room by the primary key), and a unique index on (room, clientMsgId). Seqs are allocated
 * optimistically: insert with seq = (max seq of the room, cached) + 1 and let the keys arbitrate
 * between nodes.
 * Because seqs are dense, the max is found by probing `_id`s (exponential, then binary search
 * from the cached value): point lookups by `_id` are the one query every MongoDB-wire database
 * serves from an index (FerretDB's SQLite backend scans the collection for anything else).
 * After a duplicate-key error we probe that seq's `_id` instead of trusting the error's index
 * name (FerretDB's errors name no index): taken → another node stored it, so probe the new max
 * and retry; free → it was a retry of a stored clientMsgId, found with one lookup.
 *
 * Appends to one room are serialized in this process (one write in flight per room) so that the
 * process never races itself for seqs; with batching on, everything queued for the room while a
 * write is in flight goes out as one ordered insertMany with consecutive seqs (group commit). A
 * duplicate-key error at document j means documents < j are stored; j is decided as above and the
 * rest is retried. Retries of stored messages are found by one find({clientMsgId: {$in}}) for the
 * rest of the batch, run after the first duplicate-key error (or before every batch: `precheck`).
 * No transactions and no change streams: FerretDB has neither.
 */
import { randomUUID } from 'node:crypto';
import { MongoBulkWriteError, MongoClient, MongoServerError } from 'mongodb';
import type { Collection, TopologyDescription, WriteConcernSettings } from 'mongodb';
import { StoreError } from './types.js';
import type { AppendInput, AppendResult, ChatMessage, HistoryQuery, MessageStore } from './types.js';
import { buildMessage, checkAppend, checkHistory, checkLimit, checkRoom, orderMessage } from './validate.js';

export interface StoreLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug?(obj: object, msg: string): void;
}

export interface MongoMessageStoreOptions {
  /** mongodb:// or mongodb+srv:// connection string. */
  url: string;
  dbName: string;
  /** Prepended to the collection name, so several deployments can share a database. */
  collectionPrefix?: string;
  /** Group commit (default true). Off: one insertOne per message, for comparison. */
  batching?: boolean;
  /** Most messages in one insertMany (default 256). */
  maxBatch?: number;
  /** Bound on one write: the write concern's wtimeout; sockets time out a little later. Default 10000. */
  writeTimeoutMs?: number;
  /** How long an operation waits for a usable server before failing UNAVAILABLE. Default 5000. */
  serverSelectionTimeoutMs?: number;
  /** How often the driver checks the server; bounds how fast isHealthy() recovers. Default 2000. */
  heartbeatFrequencyMs?: number;
  /** Seq conflicts with other nodes tolerated for one batch before failing UNAVAILABLE. Default 100. */
  maxConflicts?: number;
  /**
   * Look up every batch's clientMsgIds before inserting it (default false). Off, the lookup runs
   * only after a duplicate-key error, which is where a retry shows up anyway: a batch without
   * retries then costs one round trip instead of two. On FerretDB 1.x, whose SQLite backend
   * serves no secondary index to queries, every lookup scans the collection.
   */
  precheck?: boolean;
  /** Log commands that take longer than this many ms (0, the default: off; it costs an event per command). */
  slowCommandMs?: number;
  /** Default `{ w: 'majority', journal: true }` (FerretDB accepts it). */
  writeConcern?: WriteConcernSettings;
  logger?: StoreLogger;
}

interface MessageDoc {
  /** `<room>#<seq>`: room names never contain `#`. */
  _id: string;
  id: string;
  room: string;
  seq: number;
  clientMsgId: string;
  user: string;
  text?: string;
  file?: ChatMessage['file'];
  ts: number;
}

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

type State = 'new' | 'opening' | 'open' | 'closing' | 'closed';

const WRITABLE_SERVER_TYPES = new Set(['Standalone', 'RSPrimary', 'Mongos', 'LoadBalancer']);
const DUPLICATE_KEY = 11000;
/** Rooms whose max seq we remember; beyond this the oldest entries are dropped (and re-read on use). */
const SEQ_CACHE_ROOMS = 10_000;
/** Messages a node keeps for reads (a few MB): the tails of the rooms its clients are in. */
const RECENT_MESSAGES = 20_000;

const noLog: StoreLogger = { info: () => {}, warn: () => {} };

export class MongoMessageStore implements MessageStore {
  readonly kind = 'mongodb';
  private readonly opts: Required<Omit<MongoMessageStoreOptions, 'logger'>>;
  private readonly log: StoreLogger;
  private client: MongoClient | undefined;
  private coll: Collection<MessageDoc> | undefined;
  private state: State = 'new';
  private opening: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private readonly queues = new Map<string, RoomQueue>();
  /** Highest seq known to be stored per room: never above the real max, so max + 1 leaves no gap. */
  private readonly maxSeqs = new Map<string, number>();
  /** Stored messages by `_id`, most recently used last (they never change once stored). */
  private readonly recent = new Map<string, ChatMessage>();
  /** The same messages by room and clientMsgId, for retries of stored messages. */
  private readonly recentByClientMsgId = new Map<string, ChatMessage>();
  /** Point lookups in flight, by `_id`. */
  private readonly lookups = new Map<string, Promise<ChatMessage | null>>();
  /** Searches for a room's max seq in flight, shared by readers. */
  private readonly maxSeqSearches = new Map<string, Promise<number>>();
  private pending = 0;
  private idleWaiters: Array<() => void> = [];
  private topologyWritable = false;
  private lastOpFailed = false;

  constructor(options: MongoMessageStoreOptions) {
    this.opts = {
      url: options.url,
      dbName: options.dbName,
      collectionPrefix: options.collectionPrefix ?? '',
      batching: options.batching ?? true,
      maxBatch: Math.max(1, options.maxBatch ?? 256),
      writeTimeoutMs: options.writeTimeoutMs ?? 10_000,
      serverSelectionTimeoutMs: options.serverSelectionTimeoutMs ?? 5000,
      heartbeatFrequencyMs: options.heartbeatFrequencyMs ?? 2000,
      maxConflicts: options.maxConflicts ?? 100,
      precheck: options.precheck ?? false,
      slowCommandMs: options.slowCommandMs ?? 0,
      writeConcern: options.writeConcern ?? { w: 'majority', journal: true },
    };
    this.log = options.logger ?? noLog;
  }

  /** The connection string without credentials, for messages and logs. */
  get where(): string {
    return `${this.opts.url.replace(/\/\/[^@/]*@/, '//***@')} db ${this.opts.dbName}`;
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
    const client = new MongoClient(this.opts.url, {
      appName: 'switchboard',
      serverSelectionTimeoutMS: this.opts.serverSelectionTimeoutMs,
      connectTimeoutMS: Math.min(this.opts.serverSelectionTimeoutMs, 10_000),
      heartbeatFrequencyMS: this.opts.heartbeatFrequencyMs,
      socketTimeoutMS: this.opts.writeTimeoutMs + 5000,
      writeConcern: { wtimeoutMS: this.opts.writeTimeoutMs, ...this.opts.writeConcern },
      ignoreUndefined: true,
      monitorCommands: this.opts.slowCommandMs > 0,
    });
    client.on('topologyDescriptionChanged', (ev) => this.onTopology(ev.newDescription));
    if (this.opts.slowCommandMs > 0) this.logSlowCommands(client);
    try {
      await client.connect();
      const coll = client
        .db(this.opts.dbName)
        .collection<MessageDoc>(`${this.opts.collectionPrefix}messages`);
      // No (room, seq) index: `_id` is `<room>#<seq>`, so the primary key already makes seqs unique
      // and serves every read; each index costs every insert (a third of FerretDB's CPU per insert).
      // Collections created by earlier versions keep their room_seq index, which does no harm.
      await coll.createIndex({ room: 1, clientMsgId: 1 }, { unique: true, name: 'room_clientMsgId' });
      this.client = client;
      this.coll = coll;
      this.state = 'open';
      this.lastOpFailed = false;
    } catch (err) {
      this.state = 'closed';
      await client.close().catch(() => undefined);
      throw new StoreError('UNAVAILABLE', `cannot open mongodb store (${this.where}): ${errText(err)}`, {
        cause: err,
      });
    }
  }

  /**
   * With `slowCommandMs` set: each slow command (at most 10 lines/s), and every 10 s a summary of
   * all commands by name and filter keys (count, total and max ms), to see what loads the database.
   */
  private logSlowCommands(client: MongoClient): void {
    const started = new Map<number, string>();
    let stats = new Map<string, { count: number; ms: number; max: number }>();
    let second = 0;
    let lines = 0;
    client.on('commandStarted', (ev) => {
      const cmd = ev.command as Record<string, unknown>;
      const filter = (cmd.filter ?? cmd.q ?? {}) as Record<string, unknown>;
      started.set(ev.requestId, `${ev.commandName}(${Object.keys(filter).join(',')})`);
    });
    const done = (ev: { requestId: number; duration: number }, failed: boolean): void => {
      const shape = started.get(ev.requestId);
      started.delete(ev.requestId);
      if (shape === undefined) return;
      const st = stats.get(shape) ?? { count: 0, ms: 0, max: 0 };
      st.count += 1;
      st.ms += ev.duration;
      st.max = Math.max(st.max, ev.duration);
      stats.set(shape, st);
      if (ev.duration < this.opts.slowCommandMs) return;
      const now = Math.floor(Date.now() / 1000);
      if (now !== second) [second, lines] = [now, 0];
      if (++lines > 10) return;
      this.log.warn({ command: shape, ms: Math.round(ev.duration), failed }, 'slow database command');
    };
    client.on('commandSucceeded', (ev) => done(ev, false));
    client.on('commandFailed', (ev) => done(ev, true));
    const timer = setInterval(() => {
      if (stats.size === 0) return;
      const summary = Object.fromEntries(
        [...stats].map(([k, v]) => [k, { n: v.count, ms: Math.round(v.ms), max: Math.round(v.max) }]),
      );
      stats = new Map();
      this.log.info({ commands: summary, inFlight: started.size }, 'database commands in the last 10 s');
    }, 10_000);
    timer.unref();
    client.once('close', () => clearInterval(timer));
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
      setImmediate(() => void this.drainRoom(checked.room, fresh));
    });
  }

  // Reads go by `_id` point lookups over a seq range, not by a {room, seq} range query: seqs are
  // dense, so the range is exact, and `_id` equality is the one filter FerretDB's SQLite backend
  // serves from an index (anything else scans the whole collection: joins slowed down linearly
  // with the total number of stored messages, to seconds each after ~10k messages).
  async history(room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    this.requireOpen();
    checkRoom(room);
    const { afterSeq, beforeSeq, limit } = checkHistory(query);
    const max = await this.readMaxSeq(room);
    const top = beforeSeq === undefined ? max : Math.min(max, beforeSeq - 1);
    if (afterSeq === undefined && beforeSeq !== undefined) {
      return this.readRange(room, Math.max(1, top - limit + 1), top);
    }
    const from = (afterSeq ?? 0) + 1;
    return this.readRange(room, from, Math.min(top, from + limit - 1));
  }

  async latest(room: string, limit: number): Promise<ChatMessage[]> {
    this.requireOpen();
    checkRoom(room);
    checkLimit(limit);
    const max = await this.readMaxSeq(room);
    return this.readRange(room, Math.max(1, max - limit + 1), max);
  }

  async lastSeq(room: string): Promise<number> {
    this.requireOpen();
    checkRoom(room);
    return this.readMaxSeq(room);
  }

  isHealthy(): boolean {
    return this.state === 'open' && this.topologyWritable && !this.lastOpFailed;
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
    await this.opening?.catch(() => undefined);
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

  private onTopology(desc: TopologyDescription): void {
    const writable = [...desc.servers.values()].some((s) => WRITABLE_SERVER_TYPES.has(s.type));
    if (writable === this.topologyWritable) return;
    this.topologyWritable = writable;
    if (writable) this.lastOpFailed = false;
    if (this.state !== 'open') return;
    if (writable) this.log.info({ store: this.where }, 'message store: database reachable again');
    else this.log.warn({ store: this.where }, 'message store: no writable database server');
  }

  /** Runs a database call, mapping failures to StoreError and recording health. */
  private async op<T>(what: string, call: () => Promise<T>): Promise<T> {
    // Bounded here too: an operation caught in the driver while the database restarted was seen
    // never to settle, and a room's append queue (or a shared lookup) waited on it forever. Past
    // the driver's own bounds its outcome is unknown, as for any failed write: callers retry.
    const limitMs = this.opts.writeTimeoutMs + this.opts.serverSelectionTimeoutMs + 5000;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.lastOpFailed = true;
        this.log.warn(
          { store: this.where, call: what, limitMs },
          'message store: a database call got no answer in time',
        );
        reject(
          new StoreError('UNAVAILABLE', `mongodb store (${this.where}): no answer within ${limitMs} ms`),
        );
      }, limitMs);
    });
    try {
      const result = await Promise.race([call(), expired]);
      this.lastOpFailed = false;
      return result;
    } catch (err) {
      throw this.failure(err);
    } finally {
      clearTimeout(timer);
    }
  }

  private failure(err: unknown): StoreError {
    if (err instanceof StoreError) return err;
    if (this.state === 'closed') {
      return new StoreError('CLOSED', `mongodb store (${this.where}) is closed`, { cause: err });
    }
    // A server error with a reply (bad query, validation) says nothing about reachability.
    if (!(err instanceof MongoServerError)) this.lastOpFailed = true;
    return new StoreError('UNAVAILABLE', `mongodb store (${this.where}) unavailable: ${errText(err)}`, {
      cause: err,
    });
  }

  /**
   * The room's highest stored seq. Seqs are dense and never deleted, so "seq n is stored" is true
   * exactly for n ≤ max: an exponential search up from the cached value, then a binary search,
   * finds it with `_id` lookups only (a few when the cache is close, ~2·log2(max) from nothing).
   * Readers asking at once share one search (a reconnect wave asks for the same rooms); a writer
   * after a conflict searches afresh, since it must see the seq that was just taken.
   */
  private readMaxSeq(room: string, fresh = false): Promise<number> {
    if (fresh) return this.searchMaxSeq(room, true);
    let search = this.maxSeqSearches.get(room);
    if (!search) {
      search = this.searchMaxSeq(room, false);
      this.maxSeqSearches.set(room, search);
      void search.then(
        () => this.maxSeqSearches.delete(room),
        () => this.maxSeqSearches.delete(room),
      );
    }
    return search;
  }

  private async searchMaxSeq(room: string, fresh: boolean): Promise<number> {
    let low = this.maxSeqs.get(room) ?? 0;
    let step = 1;
    while (await this.isStored(room, low + step, fresh)) {
      low += step;
      step *= 2;
    }
    let high = low + step;
    while (high - low > 1) {
      const mid = Math.floor((low + high) / 2);
      if (await this.isStored(room, mid, fresh)) low = mid;
      else high = mid;
    }
    this.rememberMaxSeq(room, low);
    return low;
  }

  /**
   * Messages `from`..`to` (inclusive, ascending). A stored message never changes, so messages
   * are cached by `_id` (bounded, least recently used out) and concurrent reads of one `_id`
   * share one lookup: twenty clients of a room rejoining after a node's death ask for the same
   * messages at once.
   */
  private async readRange(room: string, from: number, to: number): Promise<ChatMessage[]> {
    if (to < from) return [];
    const out: ChatMessage[] = [];
    for (let start = from; start <= to; start += READ_PARALLELISM) {
      const end = Math.min(to, start + READ_PARALLELISM - 1);
      const found = await Promise.all(
        Array.from({ length: end - start + 1 }, (_, i) => this.lookup(seqKey(room, start + i))),
      );
      for (const m of found) if (m) out.push(m);
    }
    return out;
  }

  /**
   * The message with this `_id`: from the cache, else one lookup shared by every caller asking
   * meanwhile. `fresh` skips both for a caller that must see writes made after it asked.
   */
  private lookup(id: string, fresh = false): Promise<ChatMessage | null> {
    const cached = fresh ? undefined : this.recent.get(id);
    if (cached) {
      this.recent.delete(id);
      this.recent.set(id, cached);
      return Promise.resolve(cached);
    }
    let lookup = fresh ? undefined : this.lookups.get(id);
    if (lookup) return lookup;
    const coll = this.inUse();
    lookup = this.op('findOne by _id', () => coll.findOne({ _id: id })).then((doc) => {
      if (!doc) return null;
      const message = toMessage(doc);
      this.remember(message);
      return message;
    });
    if (fresh) return lookup;
    this.lookups.set(id, lookup);
    void lookup.then(
      () => this.lookups.delete(id),
      () => this.lookups.delete(id),
    );
    return lookup;
  }

  private remember(message: ChatMessage): void {
    const id = seqKey(message.room, message.seq);
    this.recent.delete(id);
    this.recent.set(id, message);
    this.recentByClientMsgId.set(clientKey(message.room, message.clientMsgId), message);
    if (this.recent.size > RECENT_MESSAGES) {
      const oldest = this.recent.keys().next().value;
      if (oldest !== undefined) {
        const evicted = this.recent.get(oldest);
        this.recent.delete(oldest);
        if (evicted) this.recentByClientMsgId.delete(clientKey(evicted.room, evicted.clientMsgId));
      }
    }
  }

  private async isStored(room: string, seq: number, fresh = false): Promise<boolean> {
    return (await this.lookup(seqKey(room, seq), fresh)) !== null;
  }

  private rememberMaxSeq(room: string, seq: number): void {
    const known = this.maxSeqs.get(room);
    if (known !== undefined && known >= seq) return;
    this.maxSeqs.delete(room);
    this.maxSeqs.set(room, seq);
    if (this.maxSeqs.size > SEQ_CACHE_ROOMS) {
      const oldest = this.maxSeqs.keys().next().value;
      if (oldest !== undefined) this.maxSeqs.delete(oldest);
    }
  }

  private storedByClientMsgId(room: string, g: Group): MessageDoc[] {
    const m = this.recentByClientMsgId.get(clientKey(room, g.input.clientMsgId));
    return m ? [toDoc(m)] : [];
  }

  private async dropStored(coll: Collection<MessageDoc>, room: string, todo: Group[]): Promise<Group[]> {
    // Retries of messages this node stored or read recently are settled from memory: the query
    // below is a collection scan on FerretDB, and a burst of them (clients resending after a
    // node's drain) once stalled the database for tens of seconds.
    const known = todo.flatMap((g) => this.storedByClientMsgId(room, g));
    if (known.length > 0) {
      todo = settleStored(todo, known);
      if (todo.length === 0) return todo;
    }
    const ids = todo.map((g) => g.input.clientMsgId);
    const filter = ids.length === 1 ? { room, clientMsgId: ids[0]! } : { room, clientMsgId: { $in: ids } };
    return settleStored(todo, await this.op('find by clientMsgId', () => coll.find(filter).toArray()));
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
    // A retry of a message this node knows is stored is answered without touching the database.
    const stored = todo.flatMap((g) => this.storedByClientMsgId(room, g));
    if (stored.length > 0) todo = settleStored(todo, stored);
    if (todo.length === 0) return;
    try {
      const coll = this.inUse();
      if (this.opts.precheck && todo.length > 1) todo = await this.dropStored(coll, room, todo);
      let conflicts = 0;
      let probe = false;
      while (todo.length > 0) {
        const cached = probe ? undefined : this.maxSeqs.get(room);
        const base = cached ?? (await this.readMaxSeq(room, true));
        if (cached === undefined && !probe) {
          // A room new to this node (it just became the room's owner): clients resend what they
          // had in flight when their node went, and most of that is stored. Reading the room's
          // tail once (point lookups) settles those from memory instead of by a duplicate-key
          // error and a collection scan each.
          await this.readRange(room, Math.max(1, base - WARM_TAIL + 1), base);
          todo = settleStored(
            todo,
            todo.flatMap((g) => this.storedByClientMsgId(room, g)),
          );
          if (todo.length === 0) return;
        }
        const messages = todo.map((g, i) => buildMessage(g.input, base + 1 + i, g.id));
        const docs = messages.map(toDoc);
        let stored = docs.length;
        let dupAt: number | undefined;
        try {
          await this.op<unknown>('insert', () =>
            docs.length === 1 ? coll.insertOne(docs[0]!) : coll.insertMany(docs, { ordered: true }),
          );
        } catch (err) {
          dupAt = duplicateIndex((err as StoreError).cause, docs.length);
          if (dupAt === undefined) throw err;
          stored = dupAt;
          this.lastOpFailed = false;
        }
        todo.slice(0, stored).forEach((g, i) => {
          this.remember(messages[i]!);
          settle(g, messages[i]!, false);
        });
        if (stored > 0) this.rememberMaxSeq(room, base + stored);
        if (dupAt === undefined) return;

        // Which key refused document dupAt? If its seq is stored, another node took the seq.
        // Otherwise its clientMsgId is: one lookup finds that retry and any others in the batch.
        todo = todo.slice(dupAt);
        const taken = base + 1 + dupAt;
        if (!(await this.isStored(room, taken, true))) {
          const clash = todo[0];
          todo = await this.dropStored(coll, room, todo);
          if (todo[0] !== clash) continue;
        } else {
          this.rememberMaxSeq(room, taken);
        }
        probe = true;
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
      this.maxSeqs.delete(room);
      const failure = this.failure(err);
      for (const g of todo) for (const p of g.callers) p.reject(failure);
    }
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

/** Point lookups a range read has in flight at once (well below the driver's pool of 100). */
const READ_PARALLELISM = 50;
/** Messages of a room's tail read when a node starts writing the room (see writeBatch). */
const WARM_TAIL = 100;

function clientKey(room: string, clientMsgId: string): string {
  return `${room}\u0000${clientMsgId}`;
}

function seqKey(room: string, seq: number): string {
  return `${room}#${seq}`;
}

function toDoc(m: ChatMessage): MessageDoc {
  return { _id: seqKey(m.room, m.seq), ...m };
}

function toMessage(doc: MessageDoc): ChatMessage {
  const { _id, ...message } = doc;
  return orderMessage(message);
}

/**
 * Index of the first document rejected by a unique index (earlier ones of an ordered insert are
 * stored), or undefined when the write failed otherwise and its outcome is unknown.
 */
function duplicateIndex(err: unknown, count: number): number | undefined {
  if (err instanceof MongoBulkWriteError) {
    if (err.err) return undefined; // a write concern error: the inserted ones may not be durable
    const writeErrors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
    const first = writeErrors[0];
    if (!first || first.code !== DUPLICATE_KEY) return undefined;
    return first.index >= 0 && first.index < count ? first.index : undefined;
  }
  if (err instanceof MongoServerError && err.code === DUPLICATE_KEY && count === 1) return 0;
  return undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
