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

/** A readable summary of a command: name, filter fields with their operators, sort and limit. */
function shape(s: Sent): string {
  if (s.name === 'insert') return `insert(${(s.command.documents as unknown[]).length})`;
  const filter = (s.command.filter ?? {}) as Record<string, unknown>;
  const fields = Object.entries(filter).map(([k, v]) =>
    typeof v === 'object' && v !== null ? `${k}:${Object.keys(v).sort().join('')}` : k,
  );
  const sort = s.command.sort ? ` sort ${JSON.stringify(sortOf(s))}` : '';
  const limit = s.command.limit !== undefined ? ` limit ${String(s.command.limit)}` : '';
  return `${s.name}{${fields.join(',')}}${sort}${limit}`;
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
    // that only inserts, then one find by _id. The operations below are counted after it.
    expect(log.take().map(shape)).to.deep.equal(['update{}', 'find{_id} limit 1']);
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
        .filter((s) => s.name !== 'insert')
        .map((s) => {
          const index = servingIndex(s, ours);
          expect(index, `an index of the store serving ${shape(s)}`).to.be.a('string');
          return `${shape(s)} -> ${index!}`;
        });
    } finally {
      await admin.close();
    }
  }

  it('append batch: one insert, no reads once the room is known; takeover: one find of the max first', async () => {
    const db = dbName();
    const log = new CommandLog();
    const store = await open(db, log);
    await store.append({ room: 'r', user: 'u', clientMsgId: 'first', text: 't' });
    const takeover = log.take();
    expect(takeover.map(shape)).to.deep.equal(['find{room} sort {"seq":-1} limit 1', 'insert(1)']);
    expect(await expectIndexed(db, takeover)).to.deep.equal([
      'find{room} sort {"seq":-1} limit 1 -> room_seq',
    ]);

    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        store.append({ room: 'r', user: 'u', clientMsgId: `m${i}`, text: 't' }),
      ),
    );
    expect(log.take().map(shape)).to.deep.equal(['insert(50)']);
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

  it('behind the recent tail: takeover is one find of the tail; joins, replays and appends then send writes only', async () => {
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
    expect(takeover.map(shape)).to.deep.equal(['find{room} sort {"seq":-1} limit 100']);
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
