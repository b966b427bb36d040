/**
 * Real-time benchmark (not part of the test suite): `npm run bench`, about 10 minutes on 2 cores;
 * `BENCH_QUICK=1` for a 1–2 minute pass. Writes tests/bench/RESULTS.md and RESULTS.png.
 * Rows (BENCH_ROWS, comma-separated, default all): fanout, crossnode, rooms, ingest, storm, footprint.
 * See docs/benchmarks.md for what each row measures and how to read it.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { stopAll } from '../infra/proc.js';
import { renderChart } from './realtime/chart.js';
import { runFanoutInterleaved } from './realtime/fanout.js';
import { loadAverage } from './realtime/harness.js';
import { type Row, resultsMarkdown } from './realtime/report.js';
import { runRoomsInterleaved } from './realtime/rooms.js';
import { runCrossNode, runFootprint, runIngest, runStorm } from './realtime/rows.js';
import {
  PER_ADDRESS_CAPS,
  peerConfigs,
  type Server,
  startCentrifugo,
  startRawWs,
  startSocketIo,
  startSwitchboard,
} from './realtime/servers.js';

const QUICK = process.env.BENCH_QUICK === '1';
const ROWS = new Set((process.env.BENCH_ROWS ?? 'fanout,crossnode,rooms,ingest,storm,footprint').split(','));
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
  /** The many-rooms row: clients in rooms of roomSize, every one sending; rate = messages/s in all. */
  rooms: {
    clients: Number(process.env.BENCH_ROOMS_CLIENTS ?? (QUICK ? 1_000 : 10_000)),
    roomSize: Number(process.env.BENCH_ROOM_SIZE ?? 10),
    rate: Number(process.env.BENCH_ROOMS_RATE ?? (QUICK ? 200 : 1_000)),
    stepMs: Number(process.env.BENCH_ROOMS_STEP_MS ?? (QUICK ? 3_000 : 10_000)),
    rounds: Number(process.env.BENCH_ROOMS_ROUNDS ?? (QUICK ? 2 : 5)),
  },
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

const ROOMS_NAMES = {
  ws: 'raw ws, a room per URL path (floor)',
  sio: 'Socket.IO 4, rooms, acked emits',
  cent: 'Centrifugo 6.9.1, a channel per room, memory engine, history 100 + recovery',
  sb: 'Switchboard, 1 node, durable chat.send, default per-connection limits',
} as const;

/** Settings changed from a system's defaults in the many-rooms row, for the output and RESULTS.md. */
const roomsNotes: string[] = [];

/**
 * Many rooms: every system up at once, its clients in rooms, every client sending in turn; steps
 * interleaved as in the fan-out row. Switchboard runs with its per-connection limits at their
 * defaults (each client sends far below BRIDGE_RATE_PER_SEC); only the per-address caps are raised,
 * every client being on 127.0.0.1.
 */
async function runRoomsRows(): Promise<Row[]> {
  const r = settings.rooms;
  const chosen = FANOUT_SYSTEMS.filter((x) => SYSTEMS.has(x.system));
  const caps = Object.entries(PER_ADDRESS_CAPS)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  roomsNotes.splice(
    0,
    roomsNotes.length,
    `Switchboard: 1 node, embedded store, clients \`register\` on \`chat.room.<room>\` and send with \`chat.send\` (acked once stored), ping every 5 s as messages-lib does; ` +
      `changed from its defaults: ${caps} (every client connects from 127.0.0.1; defaults 1,000 and 256). ` +
      'Per-connection limits at their defaults: BRIDGE_RATE_PER_SEC 200, BRIDGE_MAX_INFLIGHT 16, BRIDGE_IDLE_TIMEOUT_MS 10000.',
    'Socket.IO 4: `io.to(room).emit` to the room (sender included), an ack callback per send; default server options, websocket transport.',
    'Centrifugo 6.9.1: the configuration above (memory engine, history 100 + recovery), one channel per room; each client authenticated, subscribed to its room and publishing there (its reply = the ack).',
    'raw ws: a client on `/room/<name>` gets every frame sent by a member of that room, unchanged (no parsing, no ack: a send counts as acked when written).',
    'Server and load-generator processes: file descriptors raised to the hard limit (`ulimit -n`); nothing else changed.',
  );
  const rooms = Math.floor(r.clients / r.roomSize);
  log(
    `many rooms: ${r.clients} clients in ${rooms} rooms of ${r.roomSize}, ${r.rate} msgs/s in all ` +
      `(${r.stepMs / 1000} s steps, ${r.rounds} rounds; the load generator shares the machine): ` +
      chosen.map((x) => x.name).join(', '),
  );
  for (const n of roomsNotes) log(`  ${n}`);
  const servers: Server[] = [];
  try {
    for (const x of chosen)
      servers.push(
        x.system === 'sb'
          ? await startSwitchboard('switchboard-rooms', {}, { productLimits: true })
          : await x.start(),
      );
    const results = await runRoomsInterleaved(
      chosen.map((x, i) => ({
        kind: x.system,
        url: servers[i]!.url,
        secret: servers[i]!.secret,
        serverPid: () => servers[i]!.proc.pid,
        clients: r.clients,
        roomSize: r.roomSize,
        rate: r.rate,
        stepMs: r.stepMs,
        rounds: r.rounds,
        generators: Number(process.env.BENCH_ROOMS_GENERATORS ?? 2),
        log,
      })),
    );
    return chosen.map((x, i) => ({
      group: 'rooms',
      name: ROOMS_NAMES[x.system],
      system: x.system,
      rooms: results[i]!,
    }));
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
  if (ROWS.has('rooms')) rows.push(...(await runRoomsRows()));
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
    roomsNotes,
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
