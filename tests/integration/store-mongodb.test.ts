/**
 * MongoMessageStore on a real FerretDB 1.x (and on a real MongoDB too when MONGO_URL is set).
 */
import { expect } from 'chai';
import { MongoClient } from 'mongodb';
import { createMessageStore, MongoMessageStore, StoreError } from '../../backend/src/store/index.js';
import type { MessageStore, MongoMessageStoreOptions } from '../../backend/src/store/index.js';
import {
  describeMessageStoreContract,
  describeSharedStoreContract,
} from '../contract/message-store.contract.js';
import type { SharedStoreFixture, StoreFixture } from '../contract/message-store.contract.js';
import { layerNodeStore } from '../../backend/src/store/node-store.js';
import { startFerretDb } from '../infra/ferretdb.js';
import type { FerretDb } from '../infra/ferretdb.js';
import { freePort, waitFor } from '../infra/proc.js';

const FERRETDB_START_TIMEOUT_MS = 10 * 60_000; // a cold build of the binary takes about a minute
let dbCounter = 0;
const freshDbName = (): string => `sb_store_${process.pid}_${++dbCounter}`;

/** Fixtures on a fresh database of the server at url(); cleanup drops it. `layered`: as a node runs it. */
function fixtures(url: () => string, extra: Partial<MongoMessageStoreOptions> = {}, layered = false) {
  const make = (dbName: string, made: MessageStore[]) => async (): Promise<MessageStore> => {
    const mongo = new MongoMessageStore({ url: url(), dbName, ...extra });
    const store = layered
      ? layerNodeStore(mongo, {
          tailMessagesPerRoom: 50,
          tailBytesPerNode: 1 << 20,
          maxInFlight: 1000,
          slowMs: 60_000,
        }).store
      : mongo;
    made.push(store);
    await store.open();
    return store;
  };
  const drop = async (dbName: string, made: MessageStore[]): Promise<void> => {
    await Promise.all(made.map((s) => s.close()));
    const admin = new MongoClient(url(), { serverSelectionTimeoutMS: 5000 });
    try {
      await admin.db(dbName).dropDatabase();
    } finally {
      await admin.close();
    }
  };
  return {
    single: async (): Promise<StoreFixture> => {
      const dbName = freshDbName();
      const made: MessageStore[] = [];
      const open = make(dbName, made);
      return { store: await open(), reopen: open, cleanup: () => drop(dbName, made) };
    },
    shared: async (): Promise<SharedStoreFixture> => {
      const dbName = freshDbName();
      const made: MessageStore[] = [];
      const open = make(dbName, made);
      return { stores: [await open(), await open()], cleanup: () => drop(dbName, made) };
    },
  };
}

describe('MongoMessageStore on FerretDB', function () {
  let fdb: FerretDb | undefined;
  before(async function () {
    this.timeout(FERRETDB_START_TIMEOUT_MS);
    fdb = await startFerretDb();
  });
  after(async function () {
    this.timeout(30_000);
    await fdb?.stop();
  });
  const url = (): string => fdb!.url;

  const batched = fixtures(url);
  describeMessageStoreContract('mongodb on FerretDB, batching on', batched.single);
  describeSharedStoreContract('mongodb on FerretDB, batching on', batched.shared);

  describeMessageStoreContract(
    'mongodb on FerretDB behind the recent tail and load shedding',
    fixtures(url, {}, true).single,
  );

  describeMessageStoreContract(
    'mongodb on FerretDB, batching on, pre-check',
    fixtures(url, { precheck: true }).single,
  );

  const unbatched = fixtures(url, { batching: false });
  describeMessageStoreContract('mongodb on FerretDB, batching off', unbatched.single);
  describeSharedStoreContract('mongodb on FerretDB, batching off', unbatched.shared);

  describe('group commit', function () {
    this.timeout(30_000);
    for (const batching of [true, false]) {
      it(`sends the appends of one tick to one room as ${batching ? 'one insertMany' : 'one insertOne each'}`, async () => {
        const fx = await fixtures(url, { batching }).single();
        try {
          const coll = (fx.store as unknown as { coll: Record<string, (...a: unknown[]) => unknown> }).coll;
          const calls = { insertOne: 0, insertMany: 0 };
          for (const method of ['insertOne', 'insertMany'] as const) {
            const original = coll[method]!.bind(coll);
            coll[method] = (...args: unknown[]) => {
              calls[method]++;
              return original(...args);
            };
          }
          const results = await Promise.all(
            Array.from({ length: 100 }, (_, i) =>
              fx.store.append({ room: 'gc', user: 'u', clientMsgId: `m${i}`, text: 't' }),
            ),
          );
          expect(results.map((r) => r.message.seq)).to.deep.equal(
            Array.from({ length: 100 }, (_, i) => i + 1),
          );
          expect(calls).to.deep.equal(
            batching ? { insertOne: 0, insertMany: 1 } : { insertOne: 100, insertMany: 0 },
          );
        } finally {
          await fx.cleanup();
        }
      });
    }

    /** The documents each insert carried (insertOne: 1). */
    function countInserts(store: unknown): number[] {
      const coll = (store as { coll: Record<string, (...a: unknown[]) => unknown> }).coll;
      const sizes: number[] = [];
      const many = coll.insertMany!.bind(coll);
      coll.insertMany = (...args: unknown[]) => {
        sizes.push((args[0] as unknown[]).length);
        return many(...args);
      };
      const one = coll.insertOne!.bind(coll);
      coll.insertOne = (...args: unknown[]) => {
        sizes.push(1);
        return one(...args);
      };
      return sizes;
    }

    it('sends the batches of several rooms that are ready together as one ordered insertMany', async () => {
      const fx = await fixtures(url).single();
      try {
        const rooms = Array.from({ length: 10 }, (_, r) => `gc-${r}`);
        // Rooms in use (listed, their max known): a new room's first write waits for its listing.
        for (const room of rooms)
          await fx.store.append({ room, user: 'u', clientMsgId: `${room}-first`, text: 't' });
        const sizes = countInserts(fx.store);
        const results = await Promise.all(
          rooms.flatMap((room) =>
            Array.from({ length: 10 }, (_, i) =>
              fx.store.append({ room, user: 'u', clientMsgId: `${room}-m${i}`, text: 't' }),
            ),
          ),
        );
        expect(sizes).to.deep.equal([100]);
        for (const [r, room] of rooms.entries()) {
          expect(results.slice(r * 10, r * 10 + 10).map((x) => x.message.seq)).to.deep.equal(
            Array.from({ length: 10 }, (_, i) => i + 2),
          );
          const stored = await fx.store.history(room, { afterSeq: 1, limit: 100 });
          expect(stored.map((m) => m.clientMsgId)).to.deep.equal(
            Array.from({ length: 10 }, (_, i) => `${room}-m${i}`),
          );
        }
      } finally {
        await fx.cleanup();
      }
    });

    it('a retry in one room stops a shared insert there: the rooms behind it are written again, every room dense', async () => {
      const fx = await fixtures(url).single();
      try {
        await fx.store.append({ room: 'gc-a', user: 'u', clientMsgId: 'a0', text: 't' });
        for (const room of ['gc-b', 'gc-c'])
          await fx.store.append({ room, user: 'u', clientMsgId: `${room}-first`, text: 't' });
        const sizes = countInserts(fx.store);
        // Room gc-a's retry of a0 fails the shared insert at its document.
        const a = ['a0', 'a1', 'a2'].map((id) =>
          fx.store.append({ room: 'gc-a', user: 'u', clientMsgId: id, text: 't' }),
        );
        const others = ['gc-b', 'gc-c'].flatMap((room) =>
          Array.from({ length: 5 }, (_, i) =>
            fx.store.append({ room, user: 'u', clientMsgId: `${room}-${i}`, text: 't' }),
          ),
        );
        const [ra, ro] = await Promise.all([Promise.all(a), Promise.all(others)]);
        expect(ra.map((r) => [r.message.seq, r.duplicate])).to.deep.equal([
          [1, true],
          [2, false],
          [3, false],
        ]);
        expect(ro.map((r) => r.message.seq)).to.deep.equal([2, 3, 4, 5, 6, 2, 3, 4, 5, 6]);
        expect(sizes[0], 'the first insert carried every room').to.equal(13);
        // The rooms before gc-a in it were stored; gc-a's other two and the rooms after it went again.
        const again = sizes.slice(1).reduce((n, k) => n + k, 0);
        expect(again).to.be.within(2, 12);
        expect(ro.every((r) => !r.duplicate)).to.equal(true);
        const want: Record<string, string[]> = {
          'gc-a': ['a0', 'a1', 'a2'],
          'gc-b': ['gc-b-first', ...[0, 1, 2, 3, 4].map((i) => `gc-b-${i}`)],
          'gc-c': ['gc-c-first', ...[0, 1, 2, 3, 4].map((i) => `gc-c-${i}`)],
        };
        for (const [room, ids] of Object.entries(want)) {
          const stored = await fx.store.history(room, { afterSeq: 0, limit: 100 });
          expect(
            stored.map((m) => m.seq),
            room,
          ).to.deep.equal(ids.map((_, i) => i + 1));
          expect(
            stored.map((m) => m.clientMsgId),
            room,
          ).to.deep.equal(ids);
        }
      } finally {
        await fx.cleanup();
      }
    });
  });

  for (const precheck of [false, true]) {
    it(`keeps the stored head of a batch that meets, mid-batch, a retry another node stored (precheck ${precheck})`, async function () {
      this.timeout(30_000);
      const fx = await fixtures(url, { precheck }).shared();
      try {
        const [a, b] = fx.stores;
        if (precheck) {
          // Node a stores the retry right after node b's pre-check looked: the race to pin down.
          const coll = (
            b as unknown as { coll: { find: (filter: Record<string, unknown>, ...r: unknown[]) => unknown } }
          ).coll;
          const find = coll.find.bind(coll);
          let blinded = false;
          coll.find = (filter, ...rest) => {
            if (blinded || typeof filter.clientMsgId !== 'object') return find(filter, ...rest);
            blinded = true;
            return { toArray: async () => [] };
          };
        }
        const stored = await a.append({ room: 'race', user: 'u', clientMsgId: 'y', text: 'via a' });
        const [x, y, z] = await Promise.all(
          ['x', 'y', 'z'].map((id) => b.append({ room: 'race', user: 'u', clientMsgId: id, text: 'via b' })),
        );
        expect(y).to.deep.equal({ message: stored.message, duplicate: true });
        expect([x!.duplicate, z!.duplicate]).to.deep.equal([false, false]);
        expect([stored.message.seq, x!.message.seq, z!.message.seq]).to.deep.equal([1, 2, 3]);
        const order = (await a.history('race', { limit: 10 })).map((m) => m.clientMsgId);
        expect(order).to.deep.equal(['y', 'x', 'z']);
      } finally {
        await fx.cleanup();
      }
    });
  }

  it('gives up with UNAVAILABLE after maxConflicts seq conflicts, and stores nothing twice', async () => {
    const fx = await fixtures(url, { maxConflicts: 3 }).single();
    try {
      await fx.store.append({ room: 'stuck', user: 'u', clientMsgId: 'first', text: 't' });
      // A node that keeps believing the room is empty loses every race for seq 1.
      const internals = fx.store as unknown as {
        readMaxSeq: (room: string) => Promise<number>;
        maxSeqs: Map<string, number>;
      };
      internals.maxSeqs.clear();
      const readMaxSeq = internals.readMaxSeq.bind(fx.store);
      internals.readMaxSeq = async () => 0;
      const err = await fx.store.append({ room: 'stuck', user: 'u', clientMsgId: 'second', text: 't' }).then(
        () => undefined,
        (e: unknown) => e as StoreError,
      );
      expect(err).to.be.instanceOf(StoreError);
      expect(err!.code).to.equal('UNAVAILABLE');
      expect(err!.message).to.include('seq conflicts');
      expect(fx.store.isHealthy()).to.equal(true);
      internals.readMaxSeq = readMaxSeq;
      const retry = await fx.store.append({ room: 'stuck', user: 'u', clientMsgId: 'second', text: 't' });
      expect(retry.message.seq).to.equal(2);
    } finally {
      await fx.cleanup();
    }
  });

  it('is what createMessageStore makes for kind mongodb', async () => {
    const dbName = freshDbName();
    const store = createMessageStore({ kind: 'mongodb', url: url(), dbName, batching: false });
    expect(store).to.be.instanceOf(MongoMessageStore);
    expect(store.kind).to.equal('mongodb');
    await store.open();
    try {
      expect(store.isHealthy()).to.equal(true);
      const { message } = await store.append({ room: 'r', user: 'u', clientMsgId: 'c', text: 't' });
      expect(message).to.not.have.property('_id');
    } finally {
      await store.close();
      await fixtures(url)
        .single()
        .then((fx) => fx.cleanup());
    }
  });
});

describe('MongoMessageStore on FerretDB: outage', function () {
  this.timeout(120_000);
  let fdb: FerretDb | undefined;
  let store: MongoMessageStore | undefined;
  before(async function () {
    this.timeout(FERRETDB_START_TIMEOUT_MS);
    fdb = await startFerretDb();
  });
  after(async () => {
    await store?.close();
    await fdb?.stop();
  });

  it('fails appends with UNAVAILABLE while the database is down, then carries on without losing acks', async () => {
    store = new MongoMessageStore({
      url: fdb!.url,
      dbName: 'outage',
      serverSelectionTimeoutMs: 1500,
      heartbeatFrequencyMs: 500,
    });
    await store.open();
    const acked = [];
    for (let i = 1; i <= 5; i++) {
      acked.push(
        (await store.append({ room: 'o', user: 'u', clientMsgId: `before-${i}`, text: `m${i}` })).message,
      );
    }

    await fdb!.proc.stop(10_000);
    // Bounded: a hang would fail here rather than stall the suite.
    let guard: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      store.append({ room: 'o', user: 'u', clientMsgId: 'during', text: 'while down' }).then(
        () => 'stored' as const,
        (err: unknown) => err,
      ),
      new Promise((r) => (guard = setTimeout(() => r('hung'), 30_000))),
    ]);
    clearTimeout(guard);
    expect(outcome).to.be.instanceOf(StoreError);
    expect((outcome as StoreError).code).to.equal('UNAVAILABLE');
    expect((outcome as StoreError).cause).to.exist;
    await waitFor('isHealthy() to turn false', () => !store!.isHealthy(), 10_000);
    const readErr = await store.lastSeq('o').then(
      () => undefined,
      (e: unknown) => e as StoreError,
    );
    expect(readErr?.code).to.equal('UNAVAILABLE');

    await fdb!.restart();
    await waitFor('isHealthy() to turn true', () => store!.isHealthy(), 20_000);
    const retried = await store.append({ room: 'o', user: 'u', clientMsgId: 'during', text: 'while down' });
    expect(retried.duplicate).to.equal(false);
    expect(retried.message.seq).to.equal(6);
    const after = await store.append({ room: 'o', user: 'u', clientMsgId: 'after', text: 'back' });
    expect(after.message.seq).to.equal(7);
    expect(await store.history('o', { limit: 100 })).to.deep.equal([
      ...acked,
      retried.message,
      after.message,
    ]);
  });

  it('fails open() with UNAVAILABLE, naming the server, when nothing listens', async () => {
    const port = await freePort();
    const down = new MongoMessageStore({
      url: `mongodb://127.0.0.1:${port}/`,
      dbName: 'nowhere',
      serverSelectionTimeoutMs: 1000,
    });
    const err = await down.open().then(
      () => undefined,
      (e: unknown) => e as StoreError,
    );
    expect(err).to.be.instanceOf(StoreError);
    expect(err!.code).to.equal('UNAVAILABLE');
    expect(err!.message).to.include(`127.0.0.1:${port}`);
    expect(down.isHealthy()).to.equal(false);
    await down.close();
  });
});

describe('MongoMessageStore on MONGO_URL', function () {
  const mongoUrl = process.env.MONGO_URL;
  before(function () {
    // Optional: a real MongoDB is not part of this machine's tool set. Say so where the skips show.
    if (!mongoUrl) {
      console.log(
        '    skipped: MONGO_URL is not set; these specs run the store contract above (on FerretDB) ' +
          'against a real MongoDB when MONGO_URL=mongodb://HOST:PORT is set',
      );
      this.skip();
    }
  });
  const real = fixtures(() => mongoUrl!);
  describeMessageStoreContract('mongodb on MONGO_URL', real.single);
  describeSharedStoreContract('mongodb on MONGO_URL', real.shared);
});
