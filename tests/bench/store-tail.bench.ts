/**
 * Append latency tail on FerretDB by SQLite setting (not part of the test suite):
 * `npx tsx tests/bench/store-tail.bench.ts`.
 *
 * Preloads BENCH_PRELOAD (300000) messages once (through the store, 100 rooms, FerretDB's default
 * pragmas), then for each setting of BENCH_SETTINGS copies that data directory, starts FerretDB on
 * the copy with the setting's pragmas, and appends through MongoMessageStores (the product's
 * defaults: batching, shared inserts) at BENCH_RATE (500) msgs/s open-loop over BENCH_ROOMS (50)
 * rooms (room i written by store i % BENCH_STORES (1): several stores are several nodes, each
 * with its own connections and inserts in flight) for BENCH_WARMUP (10) + BENCH_SECONDS (120) s. Prints per BENCH_WINDOW (30) s and for the
 * whole run: p50/p99/p99.9/max of the append latency (call to ack), plus the main database file's
 * write bursts (in WAL mode SQLite writes it only when it checkpoints, so these are the
 * checkpoints) and how many of the slowest 1 % of appends overlapped one.
 *
 * BENCH_SETTINGS: `label=pragmas;label=pragmas;...`, pragmas as for FERRETDB_SQLITE_PRAGMAS
 * (tests/infra/ferretdb.ts), e.g. `default=;wac10k=wal_autocheckpoint(10000)`. The default list
 * is just `default=`.
 */
import { cp, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { MongoMessageStore } from '../../backend/src/store/index.js';
import { startFerretDb } from '../infra/ferretdb.js';
import { percentile } from './percentile.js';
import { preload } from './realtime/rows.js';

const PRELOAD = Number(process.env.BENCH_PRELOAD ?? 300_000);
const RATE = Number(process.env.BENCH_RATE ?? 500);
const ROOMS = Number(process.env.BENCH_ROOMS ?? 50);
const STORES = Number(process.env.BENCH_STORES ?? 1);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 10);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 120);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 30);
const SETTINGS: Array<[string, string]> = (process.env.BENCH_SETTINGS ?? 'default=')
  .split(';')
  .filter((s) => s.trim() !== '')
  .map((s) => {
    const i = s.indexOf('=');
    if (i <= 0) throw new Error(`BENCH_SETTINGS: "${s}" is not label=pragmas`);
    return [s.slice(0, i).trim(), s.slice(i + 1).trim()];
  });
const DB = 'tail';
const POLL_MS = 10;

const now = (): number => performance.now();
const log = (line: string): void => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Stats {
  n: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

function stats(lat: number[]): Stats {
  const s = [...lat].sort((a, b) => a - b);
  return {
    n: s.length,
    p50: percentile(s, 0.5),
    p99: percentile(s, 0.99),
    p999: percentile(s, 0.999),
    max: s[s.length - 1] ?? NaN,
  };
}

const f = (n: number): string => (Number.isFinite(n) ? n.toFixed(n < 10 ? 1 : 0) : '-');

interface Result extends Stats {
  label: string;
  pragmas: string;
  storedAtStart: number;
  checkpoints: number;
  slowOverlapping: string;
  walMaxMb: number;
  loopMaxMs: number;
  failed: number;
}

/** Polls the main database file: its mtime changes only while SQLite checkpoints the WAL into it. */
function watchDbFile(dir: string): { stop(): Promise<Array<[number, number]>>; walMax(): number } {
  const bursts: Array<[number, number]> = [];
  let last: number | undefined;
  let open: [number, number] | undefined;
  let walMax = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const t = now();
      try {
        const m = (await stat(join(dir, `${DB}.sqlite`))).mtimeMs;
        walMax = Math.max(
          walMax,
          (await stat(join(dir, `${DB}.sqlite-wal`)).catch(() => ({ size: 0 }))).size,
        );
        if (last !== undefined && m !== last) {
          if (open && t - open[1] <= 3 * POLL_MS) open[1] = t;
          else bursts.push((open = [t - POLL_MS, t]));
        }
        last = m;
      } catch {
        // not created yet
      }
      await sleep(POLL_MS);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return bursts;
    },
    walMax: () => walMax,
  };
}

async function runSetting(template: string, label: string, pragmas: string): Promise<Result> {
  const dir = await mkdtemp(join(tmpdir(), 'sb-tail-run-'));
  await cp(template, dir, { recursive: true });
  const fdb = await startFerretDb({ dir, sqlitePragmas: pragmas });
  const stores = Array.from({ length: STORES }, () => new MongoMessageStore({ url: fdb.url, dbName: DB }));
  const watch = watchDbFile(dir);
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  try {
    for (const store of stores) await store.open();
    log(
      `${label} (${pragmas || 'FerretDB defaults'}): appending ${RATE}/s over ${ROOMS} rooms through ${STORES} store(s)`,
    );
    const t0 = now();
    const end = t0 + (WARMUP + SECONDS) * 1000;
    const samples: Array<[number, number]> = []; // [start, latency] after the warm-up
    let issued = 0;
    let failed = 0;
    const pending = new Set<Promise<void>>();
    let measuring = false;
    while (now() < end) {
      const due = Math.floor(((now() - t0) / 1000) * RATE);
      if (!measuring && now() - t0 >= WARMUP * 1000) {
        measuring = true;
        loopDelay.enable();
      }
      for (; issued < due; issued++) {
        const i = issued;
        const start = now();
        const keep = measuring;
        const p = stores[(i % ROOMS) % STORES]!.append({
          room: `tail-${i % ROOMS}`,
          user: 'tail',
          clientMsgId: `tail-${label}-${i}`,
          text: `m${i}`,
        })
          .then(
            () => {
              if (keep) samples.push([start, now() - start]);
            },
            () => {
              failed++;
            },
          )
          .finally(() => pending.delete(p));
        pending.add(p);
      }
      await sleep(2);
    }
    await Promise.all(pending);
    loopDelay.disable();
    const bursts = await watch.stop();
    const m0 = t0 + WARMUP * 1000;
    const mBursts = bursts.filter(([, b]) => b >= m0);
    for (let w = 0; w * WINDOW < SECONDS; w++) {
      const lo = m0 + w * WINDOW * 1000;
      const hi = lo + WINDOW * 1000;
      const s = stats(samples.filter(([t]) => t >= lo && t < hi).map(([, l]) => l));
      const cps = mBursts.filter(([a]) => a >= lo && a < hi).length;
      log(
        `  ${label} ${w * WINDOW}-${(w + 1) * WINDOW}s: n ${s.n} p50 ${f(s.p50)} p99 ${f(s.p99)} p99.9 ${f(s.p999)} max ${f(s.max)} ms; checkpoints ${cps}`,
      );
    }
    const all = stats(samples.map(([, l]) => l));
    const slow = samples.filter(([, l]) => l >= all.p99);
    const overlapping = slow.filter(([t, l]) => mBursts.some(([a, b]) => a <= t + l && b >= t)).length;
    return {
      label,
      pragmas,
      storedAtStart: PRELOAD,
      ...all,
      checkpoints: mBursts.length,
      slowOverlapping: `${overlapping}/${slow.length}`,
      walMaxMb: watch.walMax() / 1e6,
      loopMaxMs: loopDelay.max / 1e6,
      failed,
    };
  } finally {
    await watch.stop();
    for (const store of stores) await store.close().catch(() => undefined);
    await fdb.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const template = await mkdtemp(join(tmpdir(), 'sb-tail-template-'));
  try {
    const t0 = now();
    const fdb = await startFerretDb({ dir: template, sqlitePragmas: '' });
    try {
      log(`preloading ${PRELOAD} messages`);
      if (PRELOAD > 0) await preload(fdb.url, DB, PRELOAD, log);
    } finally {
      await fdb.stop();
    }
    const size = (await stat(join(template, `${DB}.sqlite`))).size;
    log(`preloaded in ${((now() - t0) / 1000).toFixed(0)} s; ${DB}.sqlite ${(size / 1e6).toFixed(0)} MB`);
    const results: Result[] = [];
    for (const [label, pragmas] of SETTINGS) results.push(await runSetting(template, label, pragmas));
    console.log(
      `\nAppend latency, ${STORES} MongoMessageStore(s) on FerretDB 1.24 (SQLite): ${RATE} msgs/s over ${ROOMS} rooms, ` +
        `${PRELOAD} stored at start, ${SECONDS} s measured after ${WARMUP} s\n`,
    );
    console.log(
      '| setting | pragmas | n | p50 ms | p99 ms | p99.9 ms | max ms | checkpoints | slowest 1 % during one | WAL max MB | loop delay max ms | failed |',
    );
    console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of results) {
      console.log(
        `| ${r.label} | ${r.pragmas || '(FerretDB defaults)'} | ${r.n} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.p999)} | ${f(r.max)} | ${r.checkpoints} | ${r.slowOverlapping} | ${r.walMaxMb.toFixed(1)} | ${f(r.loopMaxMs)} | ${r.failed} |`,
      );
    }
  } finally {
    await rm(template, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
