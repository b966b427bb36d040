/**
 * Message store benchmark (not part of the test suite): `npm run bench:store`.
 * Persisted messages per second on one node: BENCH_APPENDERS (64) concurrent appenders spread over
 * BENCH_ROOMS (4) rooms, each awaiting its append before sending the next, for BENCH_SECONDS (5)
 * after a 1 s warm-up. Rows: embedded (LevelDB, group commit), mongodb on FerretDB with batching on
 * (with and without the per-batch duplicate pre-check) and off, and the same on MONGO_URL when set. Each row's throughput is compared with the
 * FerretDB-without-batching row, measured in the same run. Append latency p50/p99 in ms.
 * BENCH_PREFILL (0): messages stored first (in 100 other rooms, one database shared by the FerretDB
 * rows); every row prints the collection's size at its start, since FerretDB 1.24's costs grow with it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedMessageStore, MongoMessageStore } from '../../backend/src/store/index.js';
import type { MessageStore, MongoMessageStoreOptions } from '../../backend/src/store/index.js';
import { MongoClient } from 'mongodb';
import { startFerretDb } from '../infra/ferretdb.js';
import { percentile } from './percentile.js';

const APPENDERS = Number(process.env.BENCH_APPENDERS ?? 64);
const ROOMS = Number(process.env.BENCH_ROOMS ?? 4);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const WARMUP_SECONDS = 1;
const PREFILL = Number(process.env.BENCH_PREFILL ?? 0);
const PREFILL_ROOMS = 100;
let rowCounter = 0;
const TEXT = 'x'.repeat(64);
const PEER = 'mongodb on FerretDB, batching off';
const MONGO_MODES: Array<[string, Partial<MongoMessageStoreOptions>]> = [
  ['batching on', { batching: true }],
  ['batching on, pre-check every batch', { batching: true, precheck: true }],
  ['batching off', { batching: false }],
];

interface Row {
  name: string;
  msgsPerSec: number;
  p50: number;
  p99: number;
  stored: number;
  /** Documents in the collection when the row started. */
  collectionSize: number;
}

const now = (): number => Number(process.hrtime.bigint()) / 1e6;

/** Runs the appenders against `store` for `seconds`; returns acked count and latencies. */
async function load(
  store: MessageStore,
  seconds: number,
  tag: string,
): Promise<{ acked: number; lat: number[] }> {
  const deadline = now() + seconds * 1000;
  const lat: number[] = [];
  let acked = 0;
  await Promise.all(
    Array.from({ length: APPENDERS }, async (_, a) => {
      const room = `bench-${a % ROOMS}`;
      for (let i = 0; now() < deadline; i++) {
        const t0 = now();
        await store.append({ room, user: `user-${a}`, clientMsgId: `${tag}-${a}-${i}`, text: TEXT });
        lat.push(now() - t0);
        acked++;
      }
    }),
  );
  return { acked, lat };
}

async function measure(name: string, store: MessageStore, size: () => Promise<number>): Promise<Row> {
  await store.open();
  const collectionSize = await size();
  try {
    // Rows may share rooms (one FerretDB database): clientMsgIds of their own, or all are retries.
    const row = ++rowCounter;
    await load(store, WARMUP_SECONDS, `warm${row}`);
    const t0 = now();
    const { acked, lat } = await load(store, SECONDS, `run${row}`);
    const secs = (now() - t0) / 1000;
    lat.sort((x, y) => x - y);
    let stored = 0;
    for (let r = 0; r < ROOMS; r++) stored += await store.lastSeq(`bench-${r}`);
    if (collectionSize > 0) stored = (await size()) - collectionSize;
    const result = {
      name,
      msgsPerSec: acked / secs,
      p50: percentile(lat, 0.5),
      p99: percentile(lat, 0.99),
      stored,
      collectionSize,
    };
    console.error(
      `${name}: ${result.msgsPerSec.toFixed(0)} msgs/s (${stored} stored in the run, collection ${collectionSize} at start)`,
    );
    return result;
  } finally {
    await store.close();
  }
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'sb-bench-store-'));
  const fdb = await startFerretDb();
  try {
    rows.push(
      await measure('embedded (LevelDB, group commit)', new EmbeddedMessageStore(join(dir, 'embedded')), () =>
        Promise.resolve(0),
      ),
    );
    const admin = new MongoClient(fdb.url);
    const coll = admin.db('bench').collection('messages');
    try {
      for (let n = 0; n < PREFILL;) {
        const docs = Array.from({ length: Math.min(10_000, PREFILL - n) }, (_, i) => {
          const k = n + i;
          const room = `prefill-${k % PREFILL_ROOMS}`;
          const seq = Math.floor(k / PREFILL_ROOMS) + 1;
          return {
            _id: `${room}#${seq}`,
            room,
            seq,
            id: `p${k}`,
            clientMsgId: `p${k}`,
            user: 'prefill',
            text: TEXT,
            ts: Date.now(),
          } as unknown as Record<string, unknown>;
        });
        await coll.insertMany(docs, { ordered: false });
        n += docs.length;
        if (n % 100_000 === 0) console.error(`prefilled ${n}`);
      }
      for (const [mode, options] of MONGO_MODES) {
        // One database for the FerretDB rows (the rooms carry on from row to row), so the size grows.
        const store = new MongoMessageStore({ url: fdb.url, dbName: 'bench', ...options });
        rows.push(await measure(`mongodb on FerretDB, ${mode}`, store, () => coll.estimatedDocumentCount()));
      }
    } finally {
      await admin.close();
    }
    const mongoUrl = process.env.MONGO_URL;
    if (mongoUrl) {
      const run = Date.now().toString(36);
      for (const [mode, options] of MONGO_MODES) {
        const store = new MongoMessageStore({
          url: mongoUrl,
          dbName: `sb_bench_${run}_${rows.length}`,
          ...options,
        });
        rows.push(await measure(`mongodb on MONGO_URL, ${mode}`, store, () => Promise.resolve(-1)));
      }
    }
  } finally {
    await fdb.stop();
    await rm(dir, { recursive: true, force: true });
  }

  const peer = rows.find((r) => r.name === PEER)!.msgsPerSec;
  const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits });
  console.log(
    `\nMessage store, one node: ${APPENDERS} concurrent appenders over ${ROOMS} rooms, ${SECONDS} s per row ` +
      `(after ${WARMUP_SECONDS} s warm-up), durable appends (LevelDB sync, w:majority+j)\n`,
  );
  console.log(
    `| store | messages in the collection at start | persisted msgs/s | vs ${PEER} | append p50 ms | p99 ms |`,
  );
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(
      `| ${r.name} | ${r.collectionSize < 0 ? '?' : fmt(r.collectionSize)} | ${fmt(r.msgsPerSec)} | ${(r.msgsPerSec / peer).toFixed(2)}× | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} |`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
