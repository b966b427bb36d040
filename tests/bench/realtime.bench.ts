/**
 * Real-time benchmark (not part of the test suite): `npm run bench`, about 10 minutes on 2 cores;
 * `BENCH_QUICK=1` for a 1–2 minute pass. Writes tests/bench/RESULTS.md and RESULTS.png.
 * Rows (BENCH_ROWS, comma-separated, default all): fanout, crossnode, ingest, storm, footprint.
 * See docs/benchmarks.md for what each row measures and how to read it.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { stopAll } from '../infra/proc.js';
import { renderChart } from './realtime/chart.js';
import { runFanoutInterleaved } from './realtime/fanout.js';
import { loadAverage } from './realtime/harness.js';
import { type Row, resultsMarkdown } from './realtime/report.js';
import { runCrossNode, runFootprint, runIngest, runStorm } from './realtime/rows.js';
import {
  peerConfigs,
  type Server,
  startCentrifugo,
  startRawWs,
  startSocketIo,
  startSwitchboard,
} from './realtime/servers.js';

const QUICK = process.env.BENCH_QUICK === '1';
const ROWS = new Set((process.env.BENCH_ROWS ?? 'fanout,crossnode,ingest,storm,footprint').split(','));
const SYSTEMS = new Set((process.env.BENCH_SYSTEMS ?? 'ws,sio,cent,sb').split(','));
const OUT_DIR = process.env.BENCH_OUT_DIR ?? fileURLToPath(new URL('.', import.meta.url));

export const settings = {
  quick: QUICK,
  subscribers: Number(process.env.BENCH_SUBSCRIBERS ?? (QUICK ? 200 : 1_000)),
  fixedRate: 40_000,
  rates: QUICK
    ? [20_000, 40_000, 80_000]
    : [10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 130_000, 160_000, 200_000, 260_000, 320_000],
  stepMs: QUICK ? 2_000 : 5_000,
  /** Runs of the fixed-rate step per system, interleaved with the other systems' (median reported). */
  fixedRounds: QUICK ? 1 : 5,
};

const log = (line: string): void => void process.stderr.write(`${line}\n`);

const FANOUT_SYSTEMS = [
  { system: 'ws', name: 'raw ws broadcast (ceiling)', start: () => startRawWs() },
  { system: 'sio', name: 'Socket.IO 4', start: () => startSocketIo() },
  {
    system: 'cent',
    name: 'Centrifugo 6.9.1, 1 node, memory engine, history 100 + recovery',
    start: () => startCentrifugo('centrifugo', { log }),
  },
  {
    system: 'sb',
    name: 'Switchboard, 1 node, durable chat.send',
    start: () => startSwitchboard('switchboard'),
  },
] as const;

/** The 1-node fan-out: the three servers up at once and measured in interleaved steps. */
async function runFanoutRows(): Promise<Row[]> {
  const chosen = FANOUT_SYSTEMS.filter((x) => SYSTEMS.has(x.system));
  log(`fan-out: ${chosen.map((x) => x.name).join(', ')}, interleaved`);
  const servers: Server[] = [];
  try {
    for (const x of chosen) servers.push(await x.start());
    const results = await runFanoutInterleaved(
      chosen.map((x, i) => ({
        kind: x.system,
        urls: [servers[i]!.url],
        pubUrl: servers[i]!.url,
        secret: servers[i]!.secret,
        serverPids: () => [servers[i]!.proc.pid],
        subscribers: settings.subscribers,
        rates: settings.rates,
        fixedRate: settings.fixedRate,
        stepMs: settings.stepMs,
        generators: 2,
        repeatFixed: settings.fixedRounds - 1,
        log,
      })),
    );
    return chosen.map((x, i) => ({ group: 'fanout', name: x.name, system: x.system, fanout: results[i]! }));
  } finally {
    await Promise.allSettled(servers.map((s) => s.proc.stop()));
  }
}

async function main(): Promise<void> {
  if (process.env.BENCH_RENDER_ONLY === '1') {
    // Redraw RESULTS.png from the RESULTS.json of the last run (e.g. after a chart change).
    const rows = JSON.parse(readFileSync(`${OUT_DIR}/RESULTS.json`, 'utf8')) as Row[];
    await renderChart(rows, `${OUT_DIR}/RESULTS.png`);
    return;
  }
  const started = Date.now();
  const loadBefore = loadAverage();
  const rows: Row[] = [];
  if (ROWS.has('fanout')) rows.push(...(await runFanoutRows()));
  if (ROWS.has('crossnode')) rows.push(...(await runCrossNode(settings, log)));
  if (ROWS.has('ingest')) rows.push(...(await runIngest(settings, log)));
  if (ROWS.has('storm')) rows.push(...(await runStorm(settings, log)));
  if (ROWS.has('footprint')) rows.push(...(await runFootprint(settings, log)));
  const meta = {
    date: new Date().toISOString(),
    quick: QUICK,
    subscribers: settings.subscribers,
    stepMs: settings.stepMs,
    fixedRounds: settings.fixedRounds,
    loadBefore,
    loadAfter: loadAverage(),
    minutes: (Date.now() - started) / 60_000,
    peerConfigs: [...peerConfigs],
  };
  mkdirSync(OUT_DIR, { recursive: true });
  const md = resultsMarkdown(rows, meta);
  writeFileSync(`${OUT_DIR}/RESULTS.md`, md);
  writeFileSync(`${OUT_DIR}/RESULTS.json`, `${JSON.stringify(rows, null, 2)}\n`);
  await renderChart(rows, `${OUT_DIR}/RESULTS.png`).catch((err: unknown) => log(`chart: ${String(err)}`));
  process.stdout.write(md);
}

main()
  .then(async () => {
    await stopAll();
    process.exit(0);
  })
  .catch(async (err: unknown) => {
    log(`benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await stopAll();
    process.exit(1);
  });
