/**
 * EmbeddedMessageStore: LevelDB (classic-level) in a local directory, for a single process.
 *
 * Keys (utf8):
 *   m!<len>:<room>!<seq, 16 hex digits>  → the message as JSON
 *   c!<len>:<room>!<clientMsgId>         → its seq (decimal), the idempotency record
 * `<len>` is the room's length, so no room's key prefix is a prefix of another room's (a room may
 * contain `!`). Fixed-width hex keeps byte order equal to seq order.
 *
 * One writer: appends queue up and every queued append goes out in one atomic, fsynced batch
 * (group commit), the next batch starting when the previous one is on disk. Seqs are assigned
 * inside that single writer, so they are dense, and only advance in memory once the batch is
 * durable.
 */
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { StoreLifecycle, type StoreState } from './store-lifecycle.js';
import { StoreError } from './types.js';
import type { AppendInput, AppendResult, ChatMessage, HistoryQuery, MessageStore } from './types.js';
import { buildMessage, checkAppend, checkHistory, checkLimit, checkRoom, newEpoch } from './validate.js';

/** Largest number of appends in one batch write; bounds the size of a single LevelDB write. */
const MAX_BATCH = 1024;
/** Rooms whose last seq stays in memory; others are read from disk again when written to. */
const SEQ_CACHE_ROOMS = 10_000;

interface Pending {
  input: AppendInput;
  resolve(result: AppendResult): void;
  reject(err: unknown): void;
}

const roomPrefix = (room: string): string => `${room.length}:${room}!`;
const msgPrefix = (room: string): string => `m!${roomPrefix(room)}`;
const msgKey = (room: string, seq: number): string => msgPrefix(room) + seq.toString(16).padStart(16, '0');
// Hex digits sort below 'g': every message key of the room lies in [prefix, prefix + 'g').
const msgEnd = (room: string): string => `${msgPrefix(room)}g`;
/** The store's epoch (see MessageStore.epoch); "e!" is no room's prefix. */
const EPOCH_KEY = 'e!epoch';
const idemKey = (room: string, clientMsgId: string): string => `c!${roomPrefix(room)}${clientMsgId}`;

export class EmbeddedMessageStore implements MessageStore {
  readonly kind = 'embedded';
  readonly dir: string;
  private db: ClassicLevel<string, string> | undefined;
  private readonly life: StoreLifecycle;
  private queue: Pending[] = [];
  private writer: Promise<void> | undefined;
  /** Last durable seq per room; filled lazily from disk. */
  private readonly lastSeqs = new Map<string, number>();
  private _epoch = '';

  constructor(dir: string) {
    this.dir = resolve(dir);
    this.life = new StoreLifecycle(`embedded store ${this.dir}`);
  }

  open(): Promise<void> {
    return this.life.open(() => this.openDb());
  }

  private async openDb(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true });
      const db = new ClassicLevel<string, string>(this.dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
      await db.open();
      // Kept with the data: a wiped directory starts a new epoch.
      const [held] = await db.getMany([EPOCH_KEY]);
      this._epoch = held ?? newEpoch();
      if (held === undefined) await db.put(EPOCH_KEY, this._epoch, { sync: true });
      this.db = db;
    } catch (err) {
      const locked = (err as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED';
      const why = locked
        ? 'it is locked by another process (or another store in this one); an embedded store serves one process'
        : errText(err);
      throw new StoreError('UNAVAILABLE', `cannot open message store directory ${this.dir}: ${why}`, {
        cause: err,
      });
    }
  }

  epoch(): string {
    return this._epoch;
  }

  append(input: AppendInput): Promise<AppendResult> {
    try {
      this.requireOpen();
      const checked = checkAppend(input);
      return new Promise<AppendResult>((resolvePending, rejectPending) => {
        this.queue.push({ input: checked, resolve: resolvePending, reject: rejectPending });
        this.startWriter();
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async history(room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    const db = this.requireOpen();
    checkRoom(room);
    const { afterSeq, beforeSeq, limit } = checkHistory(query);
    const upper = beforeSeq === undefined ? msgEnd(room) : msgKey(room, beforeSeq);
    if (afterSeq === undefined && beforeSeq !== undefined) {
      const newest = await this.read(() =>
        db.values({ gte: msgPrefix(room), lt: upper, reverse: true, limit }).all(),
      );
      return newest.reverse().map(parse);
    }
    const oldest = await this.read(() =>
      db.values({ gt: msgKey(room, afterSeq ?? 0), lt: upper, limit }).all(),
    );
    return oldest.map(parse);
  }

  async latest(room: string, limit: number): Promise<ChatMessage[]> {
    const db = this.requireOpen();
    checkRoom(room);
    checkLimit(limit);
    const newest = await this.read(() =>
      db.values({ gte: msgPrefix(room), lt: msgEnd(room), reverse: true, limit }).all(),
    );
    return newest.reverse().map(parse);
  }

  async lastSeq(room: string): Promise<number> {
    this.requireOpen();
    checkRoom(room);
    return this.loadLastSeq(room);
  }

  isHealthy(): boolean {
    return this.state === 'open';
  }

  async flush(): Promise<void> {
    while (this.writer) await this.writer;
  }

  close(): Promise<void> {
    return this.life.close(
      () => this.flush(),
      async () => this.db?.close(),
    );
  }

  private get state(): StoreState {
    return this.life.state;
  }

  private requireOpen(): ClassicLevel<string, string> {
    if (this.state !== 'open' || !this.db) {
      throw new StoreError(
        'CLOSED',
        `embedded store ${this.dir} is ${this.state === 'new' ? 'not open' : 'closed'}`,
      );
    }
    return this.db;
  }

  private async read<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      if (this.state === 'closed')
        throw new StoreError('CLOSED', `embedded store ${this.dir} is closed`, { cause: err });
      throw new StoreError('UNAVAILABLE', `reading ${this.dir} failed: ${errText(err)}`, { cause: err });
    }
  }

  /**
   * The room's last durable seq. Only the writer (`cache` true) fills the cache: a reader racing
   * a batch could otherwise cache a value from before it, and the next batch would reuse seqs.
   */
  private async loadLastSeq(room: string, cache = false): Promise<number> {
    const cached = this.lastSeqs.get(room);
    if (cached !== undefined) return cached;
    const db = this.db;
    if (!db || (this.state !== 'open' && this.state !== 'closing')) {
      throw new StoreError('CLOSED', `embedded store ${this.dir} is closed`);
    }
    const keys = await this.read(() =>
      db.keys({ gte: msgPrefix(room), lt: msgEnd(room), reverse: true, limit: 1 }).all(),
    );
    const last = keys[0] === undefined ? 0 : parseInt(keys[0].slice(msgPrefix(room).length), 16);
    if (cache) this.lastSeqs.set(room, last);
    return last;
  }

  private startWriter(): void {
    if (this.writer) return;
    // Waiting one macrotask lets every append made in this tick join the first batch.
    this.writer = new Promise((r) => setImmediate(r)).then(() => this.drain());
  }

  private async drain(): Promise<void> {
    try {
      for (;;) {
        // Checked and cleared in one synchronous step: an append made after this sees no writer
        // and starts one, so nothing is left behind in the queue.
        if (this.queue.length === 0) {
          this.writer = undefined;
          return;
        }
        const batch = this.queue.splice(0, MAX_BATCH);
        try {
          await this.commit(batch);
        } catch (err) {
          const failure =
            err instanceof StoreError
              ? err
              : new StoreError('UNAVAILABLE', `writing to ${this.dir} failed: ${errText(err)}`, {
                  cause: err,
                });
          for (const p of batch) p.reject(failure);
        }
      }
    } finally {
      this.writer = undefined;
    }
  }

  /** Writes one batch atomically; resolves every pending append of it, or throws for all of them. */
  private async commit(batch: Pending[]): Promise<void> {
    const db = this.db!;
    const rooms = [...new Set(batch.map((p) => p.input.room))];
    const bases = new Map<string, number>();
    for (const room of rooms) bases.set(room, await this.loadLastSeq(room, true));
    const known = await db.getMany(batch.map((p) => idemKey(p.input.room, p.input.clientMsgId)));

    const next = new Map(bases);
    const ops: Array<{ type: 'put'; key: string; value: string }> = [];
    const fresh = new Map<string, ChatMessage>();
    const outcomes: Array<{ message?: ChatMessage; storedSeq?: number; duplicate: boolean }> = [];
    batch.forEach((p, i) => {
      const { room, clientMsgId } = p.input;
      const key = idemKey(room, clientMsgId);
      const sameBatch = fresh.get(key);
      const storedSeq = known[i];
      if (sameBatch) {
        outcomes.push({ message: sameBatch, duplicate: true });
      } else if (storedSeq !== undefined) {
        outcomes.push({ storedSeq: Number(storedSeq), duplicate: true });
      } else {
        const seq = next.get(room)! + 1;
        next.set(room, seq);
        const message = buildMessage(p.input, seq);
        ops.push({ type: 'put', key: msgKey(room, seq), value: JSON.stringify(message) });
        ops.push({ type: 'put', key, value: String(seq) });
        fresh.set(key, message);
        outcomes.push({ message, duplicate: false });
      }
    });

    const originalsNeeded = outcomes
      .map((o, i) => (o.storedSeq === undefined ? undefined : msgKey(batch[i]!.input.room, o.storedSeq)))
      .filter((k): k is string => k !== undefined);
    const originals = new Map<string, string | undefined>();
    if (originalsNeeded.length > 0) {
      const values = await db.getMany(originalsNeeded);
      originalsNeeded.forEach((k, i) => originals.set(k, values[i]));
    }

    if (ops.length > 0) await db.batch(ops, { sync: true });
    for (const [room, seq] of next) {
      this.lastSeqs.delete(room); // re-insert: the Map's order is then least recently written first
      this.lastSeqs.set(room, seq);
    }
    for (const room of this.lastSeqs.keys()) {
      if (this.lastSeqs.size <= SEQ_CACHE_ROOMS) break;
      this.lastSeqs.delete(room);
    }

    batch.forEach((p, i) => {
      const o = outcomes[i]!;
      if (o.message) {
        p.resolve({ message: o.message, duplicate: o.duplicate });
        return;
      }
      const raw = originals.get(msgKey(p.input.room, o.storedSeq!));
      if (raw === undefined) {
        p.reject(
          new StoreError(
            'UNAVAILABLE',
            `${this.dir}: idempotency record without its message (seq ${o.storedSeq})`,
          ),
        );
      } else {
        p.resolve({ message: parse(raw), duplicate: true });
      }
    });
  }
}

function parse(raw: string): ChatMessage {
  return JSON.parse(raw) as ChatMessage;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
