/**
 * What the database sees of each store operation, on a real MongoDB-wire database (FerretDB):
 * the commands the driver sends (command monitoring) and, for every filter, the index created by
 * the store that serves it (listIndexes). docs/store.md's table "what the database sees" is this.
 *
 * FerretDB 1.24 scans the collection whatever the indexes, so "served by an index" is checked by
 * the shape of each command against the indexes listed, as MongoDB's planner would pick them: the
 * equality fields of the filter are the index's leading fields, the range and sort field the next.
 */
import { expect } from 'chai';
import { MongoClient } from 'mongodb';
import type { Document } from 'mongodb';
import { MongoMessageStore } from '../../backend/src/store/index.js';
import type { MessageStore } from '../../backend/src/store/index.js';
import { RecentTailStore } from '../../backend/src/store/recent-tail.js';
import { startFerretDb } from '../infra/ferretdb.js';
import type { FerretDb } from '../infra/ferretdb.js';

interface Sent {
  name: string;
  command: Document;
}

/** The data commands (not handshakes, heartbeats or index creation) sent since the last take(). */
class CommandLog {
  private sent: Sent[] = [];
  readonly observe = (name: string, command: Document): void => {
    if (['find', 'insert', 'update', 'delete', 'aggregate', 'count', 'getMore'].includes(name)) {
      this.sent.push({ name, command });
    }
  };
  take(): Sent[] {
    const out = this.sent;
    this.sent = [];
    return out;
  }
}

/**
 * A readable summary of a command: the collection unless it is `messages`, name, filter fields with
 * their operators, sort and limit.
 */
function shape(s: Sent): string {
  const coll = s.command[s.name] as string;
  const prefix = coll === 'messages' ? '' : `${coll}.`;
  if (s.name === 'insert') return `${prefix}insert(${(s.command.documents as unknown[]).length})`;
  const updates = s.command.updates as Array<{ q: Record<string, unknown> }> | undefined;
  const filter = (s.command.filter ?? updates?.[0]?.q ?? {}) as Record<string, unknown>;
  const fields = Object.entries(filter).map(([k, v]) =>
    typeof v === 'object' && v !== null ? `${k}:${Object.keys(v).sort().join('')}` : k,
  );
  const sort = s.command.sort ? ` sort ${JSON.stringify(sortOf(s))}` : '';
  const limit = s.command.limit !== undefined ? ` limit ${String(s.command.limit)}` : '';
  return `${prefix}${s.name}{${fields.join(',')}}${sort}${limit}`;
}

/** The driver sends a sort as a Map (key order matters). */
function sortOf(s: Sent): Record<string, unknown> {
  const sort = s.command.sort as unknown;
  if (sort instanceof Map) return Object.fromEntries(sort) as Record<string, unknown>;
  return (sort ?? {}) as Record<string, unknown>;
}

const RANGE_OPS = new Set(['$gt', '$gte', '$lt', '$lte']);

/** The name of an index that serves this find's filter and sort, or undefined. */
function servingIndex(
  s: Sent,
  indexes: Array<{ name: string; key: Record<string, number> }>,
): string | undefined {
  const filter = (s.command.filter ?? {}) as Record<string, unknown>;
  const equality: string[] = [];
  const ranged: string[] = [];
  for (const [field, value] of Object.entries(filter)) {
    const ops = typeof value === 'object' && value !== null ? Object.keys(value) : [];
    if (ops.length === 0 || (ops.length === 1 && ops[0] === '$in')) equality.push(field);
    else if (ops.every((op) => RANGE_OPS.has(op))) ranged.push(field);
    else return undefined;
  }
  const sorted = Object.keys(sortOf(s));
  const next = [...new Set([...ranged, ...sorted])];
  if (next.length > 1) return undefined;
  for (const index of indexes) {
    const keys = Object.keys(index.key);
    const lead = keys.slice(0, equality.length);
    if (lead.length !== equality.length || !equality.every((f) => lead.includes(f))) continue;
    if (next.length === 1 && keys[equality.length] !== next[0]) continue;
    if (equality.length === 0 && next.length === 0) continue;
    return index.name;
  }
  return undefined;
}

describe('MongoMessageStore: the commands each operation sends, and the indexes serving them (FerretDB)', function () {
  this.timeout(120_000);
  let fdb: FerretDb | undefined;
  const made: MessageStore[] = [];
  let n = 0;
  const dbName = (): string => `sb_cmds_${process.pid}_${++n}`;

  before(async function () {
    this.timeout(10 * 60_000);
    fdb = await startFerretDb();
  });
  after(async () => {
    await Promise.all(made.map((s) => s.close()));
    await fdb?.stop();
  });

  async function open(db: string, log: CommandLog, tail = false): Promise<MessageStore> {
    const mongo = new MongoMessageStore({ url: fdb!.url, dbName: db, commandObserver: log.observe });
    const store = tail ? new RecentTailStore(mongo, { perRoom: 100, perNodeBytes: 10_000_000 }) : mongo;
    made.push(store);
    await store.open();
    // Opening reads (or makes, the first time) the database's epoch in <prefix>meta: an upsert
    // that only inserts, then one find by _id; then the room directory's marker, one find by _id
    // (and, the first time, the directory built from the messages: a distinct, not logged here,
    // and the marker's upsert). The operations below are counted after it.
    const opening = log.take().map(shape);
    expect(opening.slice(0, 3)).to.deep.equal([
      'meta.update{_id}',
      'meta.find{_id} limit 1',
      'meta.find{_id} limit 1',
    ]);
    const rest = opening.slice(3);
    expect(rest, 'then nothing, or the rooms listed (1,000 per command) and the marker written').to.satisfy(
      (r: string[]) =>
        r.length === 0 ||
        (r.at(-1) === 'meta.update{_id}' && r.slice(0, -1).every((c) => c === 'rooms.update{_id}')),
    );
    return store;
  }

  /** The indexes of the collection, each command's index checked against them. */
  async function expectIndexed(db: string, sent: Sent[]): Promise<string[]> {
    const admin = new MongoClient(fdb!.url);
    try {
      const indexes = (await admin.db(db).collection('messages').listIndexes().toArray()) as Array<{
        name: string;
        key: Record<string, number>;
      }>;
      const ours = indexes.filter((i) => i.name !== '_id_');
      expect(ours.map((i) => i.name).sort()).to.deep.equal(['room_clientMsgId', 'room_seq']);
      return sent
        .filter((s) => !s.name.endsWith('insert'))
        .map((s) => {
          // Every read bounded on the server too: a query nobody waits for any more stops there.
          if (s.name === 'find') expect(s.command.maxTimeMS, `${shape(s)}: maxTimeMS`).to.be.a('number');
          // The directory is looked up and written by _id only: its primary index.
          if (s.command[s.name] === 'rooms') {
            expect(shape(s), 'a directory command by _id').to.match(/^rooms\.(find|update)\{_id\}/);
            return `${shape(s)} -> _id_`;
          }
          const index = servingIndex(s, ours);
          expect(index, `an index of the store serving ${shape(s)}`).to.be.a('string');
          return `${shape(s)} -> ${index!}`;
        });
    } finally {
      await admin.close();
    }
  }

  it('append batch: one insert, no reads once the room is known; a new room: its directory entry first; takeover: one find of the max', async () => {
    const db = dbName();
    const log = new CommandLog();
    const store = await open(db, log);
    await store.append({ room: 'r', user: 'u', clientMsgId: 'first', text: 't' });
    const created = log.take();
    // Not in the directory, so no messages: nothing of the messages is read.
    expect(created.map(shape)).to.deep.equal(['rooms.find{_id} limit 1', 'rooms.update{_id}', 'insert(1)']);
    expect(await expectIndexed(db, created)).to.deep.equal([
      'rooms.find{_id} limit 1 -> _id_',
      'rooms.update{_id} -> _id_',
    ]);

    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        store.append({ room: 'r', user: 'u', clientMsgId: `m${i}`, text: 't' }),
      ),
    );
    expect(log.take().map(shape)).to.deep.equal(['insert(50)']);

    // Another node taking the room over: the directory says it has messages; one find of the max.
    const log2 = new CommandLog();
    const other = await open(db, log2);
    const next = await other.append({ room: 'r', user: 'u', clientMsgId: 'second', text: 't' });
    expect(next.message.seq).to.equal(52);
    const takeover = log2.take();
    expect(takeover.map(shape)).to.deep.equal([
      'rooms.find{_id} limit 1',
      'find{room} sort {"seq":-1} limit 1',
      'insert(1)',
    ]);
    expect(await expectIndexed(db, takeover)).to.deep.equal([
      'rooms.find{_id} limit 1 -> _id_',
      'find{room} sort {"seq":-1} limit 1 -> room_seq',
    ]);
  });

  it('a new room behind the recent tail: join, history and lastSeq read only the directory; the first append lists it', async () => {
    const db = dbName();
    const log = new CommandLog();
    const owner = await open(db, log, true);
    expect(await owner.latest('fresh', 50)).to.deep.equal([]);
    expect(await owner.history('fresh', { afterSeq: 0, limit: 100 })).to.deep.equal([]);
    expect(await owner.lastSeq('fresh')).to.equal(0);
    const first = await owner.append({ room: 'fresh', user: 'u', clientMsgId: 'a', text: 't' });
    expect(first.message.seq).to.equal(1);
    const sent = log.take();
    expect(sent.map(shape)).to.deep.equal(['rooms.find{_id} limit 1', 'rooms.update{_id}', 'insert(1)']);
    await expectIndexed(db, sent);
  });

  it('a database written before the room directory: the first open lists every room', async () => {
    const db = dbName();
    const admin = new MongoClient(fdb!.url);
    try {
      const docs = ['old-a', 'old-b'].flatMap((room) =>
        [1, 2, 3].map((seq) => ({
          _id: `${room}#${seq}`,
          id: `${room}-${seq}`,
          room,
          seq,
          clientMsgId: `c${seq}`,
          user: 'u',
          text: 't',
          ts: 1,
        })),
      );
      await admin
        .db(db)
        .collection<{ _id: string }>('messages')
        .insertMany(docs as Array<{ _id: string }>);
      const store = await open(db, new CommandLog());
      expect((await store.latest('old-a', 10)).map((m) => m.seq)).to.deep.equal([1, 2, 3]);
      expect(await store.lastSeq('old-b')).to.equal(3);
      const listed = await admin.db(db).collection('rooms').find({}).toArray();
      expect(listed.map((d) => d._id).sort()).to.deep.equal(['old-a', 'old-b']);
    } finally {
      await admin.close();
    }
  });

  it('nodes opening a new database at once all open (the directory marker written by one of them)', async () => {
    const db = dbName();
    const stores = Array.from({ length: 4 }, () => new MongoMessageStore({ url: fdb!.url, dbName: db }));
    made.push(...stores);
    const opened = await Promise.allSettled(stores.map((s) => s.open()));
    expect(opened.map((o) => (o.status === 'rejected' ? String(o.reason) : 'open'))).to.deep.equal([
      'open',
      'open',
      'open',
      'open',
    ]);
  });

  it('a room a node without the directory wrote (a seq conflict): its max is read from the messages, and it is listed', async () => {
    const db = dbName();
    const log = new CommandLog();
    const store = await open(db, log);
    const admin = new MongoClient(fdb!.url);
    try {
      // An older node's write: a message, no directory entry.
      await admin
        .db(db)
        .collection<{ _id: string }>('messages')
        .insertOne({
          _id: 'legacy#1',
          id: 'x',
          room: 'legacy',
          seq: 1,
          clientMsgId: 'old',
          user: 'u',
          ts: 1,
        } as {
          _id: string;
        });
      const res = await store.append({ room: 'legacy', user: 'u', clientMsgId: 'new', text: 't' });
      expect(res.message.seq, 'after the message already there').to.equal(2);
      expect(
        (
          await admin
            .db(db)
            .collection('rooms')
            .find({ _id: 'legacy' as never })
            .toArray()
        ).length,
      ).to.equal(1);
    } finally {
      await admin.close();
    }
  });

  it('a retry of a stored message: the duplicate-key error, then one find by clientMsgId', async () => {
    const db = dbName();
    const log = new CommandLog();
    const store = await open(db, log);
    const first = await store.append({ room: 'r', user: 'u', clientMsgId: 'a', text: 't' });
    log.take();
    const again = await store.append({ room: 'r', user: 'u', clientMsgId: 'a', text: 't' });
    expect(again).to.deep.equal({ message: first.message, duplicate: true });
    const sent = log.take();
    expect(sent.map(shape)).to.deep.equal(['insert(1)', 'find{room,clientMsgId}']);
    expect(await expectIndexed(db, sent)).to.deep.equal(['find{room,clientMsgId} -> room_clientMsgId']);
  });

  it('a seq another node took: the duplicate-key error, one find by clientMsgId, one find of the max', async () => {
    const db = dbName();
    const [logA, logB] = [new CommandLog(), new CommandLog()];
    const a = await open(db, logA);
    const b = await open(db, logB);
    await a.append({ room: 'r', user: 'u', clientMsgId: 'a1', text: 't' });
    await b.append({ room: 'r', user: 'u', clientMsgId: 'b1', text: 't' });
    await a.append({ room: 'r', user: 'u', clientMsgId: 'a2', text: 't' }); // a's cached max is stale
    logA.take();
    const res = await b.append({ room: 'r', user: 'u', clientMsgId: 'b2', text: 't' });
    expect(res.message.seq).to.equal(4);
    const sent = logB.take().slice(-4);
    expect(sent.map(shape)).to.deep.equal([
      'insert(1)',
      'find{room,clientMsgId}',
      'find{room} sort {"seq":-1} limit 1',
      'insert(1)',
    ]);
    await expectIndexed(db, sent);
  });

  it('history page and join on the store itself: one find each, along room_seq', async () => {
    const db = dbName();
    const log = new CommandLog();
    const store = await open(db, log);
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        store.append({ room: 'h', user: 'u', clientMsgId: `m${i}`, text: 't' }),
      ),
    );
    log.take();
    expect((await store.history('h', { afterSeq: 10, limit: 5 })).map((m) => m.seq)).to.deep.equal([
      11, 12, 13, 14, 15,
    ]);
    expect((await store.history('h', { beforeSeq: 10, limit: 3 })).map((m) => m.seq)).to.deep.equal([
      7, 8, 9,
    ]);
    expect(
      (await store.history('h', { afterSeq: 2, beforeSeq: 5, limit: 9 })).map((m) => m.seq),
    ).to.deep.equal([3, 4]);
    expect((await store.latest('h', 2)).map((m) => m.seq)).to.deep.equal([29, 30]);
    expect(await store.lastSeq('h')).to.equal(30);
    const sent = log.take();
    expect(sent.map(shape)).to.deep.equal([
      'find{room,seq:$gt} sort {"seq":1} limit 5',
      'find{room,seq:$lt} sort {"seq":-1} limit 3',
      'find{room,seq:$gt$lt} sort {"seq":1} limit 9',
      'find{room} sort {"seq":-1} limit 2',
      'find{room} sort {"seq":-1} limit 1',
    ]);
    expect(new Set((await expectIndexed(db, sent)).map((l) => l.split(' -> ')[1]))).to.deep.equal(
      new Set(['room_seq']),
    );
  });

  it('behind the recent tail: takeover is one directory lookup and one find of the tail; joins, replays and appends then send writes only', async () => {
    const db = dbName();
    const [logOld, logNew] = [new CommandLog(), new CommandLog()];
    const old = await open(db, logOld);
    await Promise.all(
      Array.from({ length: 150 }, (_, i) =>
        old.append({ room: 't', user: 'u', clientMsgId: `m${i}`, text: 't' }),
      ),
    );
    const owner = await open(db, logNew, true);
    // Takeover: the first call for the room reads its tail (and so its max) with one find.
    expect(await owner.lastSeq('t')).to.equal(150);
    const takeover = logNew.take();
    expect(takeover.map(shape)).to.deep.equal([
      'rooms.find{_id} limit 1',
      'find{room} sort {"seq":-1} limit 100',
    ]);
    await expectIndexed(db, takeover);
    // A resend of a message in the tail is answered from memory.
    const resent = await owner.append({ room: 't', user: 'u', clientMsgId: 'm149', text: 't' });
    expect(resent.duplicate).to.equal(true);
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        owner.append({ room: 't', user: 'u', clientMsgId: `n${i}`, text: 't' }),
      ),
    );
    // Joins (latest, or since a seq in the tail), gap fills and lastSeq: no command at all.
    expect((await owner.latest('t', 50)).map((m) => m.seq)).to.deep.equal(
      Array.from({ length: 50 }, (_, i) => 121 + i),
    );
    expect((await owner.history('t', { afterSeq: 100, limit: 501 })).length).to.equal(70);
    expect(
      (await owner.history('t', { afterSeq: 150, beforeSeq: 153, limit: 10 })).map((m) => m.seq),
    ).to.deep.equal([151, 152]);
    expect(await owner.lastSeq('t')).to.equal(170);
    expect(logNew.take().map(shape)).to.deep.equal(['insert(20)']);
    // An older page goes to the database: one find.
    expect((await owner.history('t', { beforeSeq: 10, limit: 5 })).map((m) => m.seq)).to.deep.equal([
      5, 6, 7, 8, 9,
    ]);
    expect(logNew.take().map(shape)).to.deep.equal(['find{room,seq:$lt} sort {"seq":-1} limit 5']);
  });
});
