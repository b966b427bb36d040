/**
 * Event bus benchmark (not part of the test suite): `npm run bench:bus`.
 * Measures, in one run on this machine:
 *   - local bus: send throughput and request/reply latency inside one process;
 *   - clustered bus: 3 nodes on 2 real Hazelcast members, sends from node-0 to consumers on the
 *     other two nodes (a separate process each), and request/reply latency across nodes;
 *   - the peer: a bare TCP socket with the same framing between two processes, the ceiling for
 *     node-to-node traffic.
 * Prints a table with each row's ratio to the peer. Sizes: BENCH_MESSAGES (default 200000).
 */
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { StandaloneClusterManager } from '../../backend/src/cluster/standalone.js';
import { loadConfig } from '../../backend/src/config/config.js';
import { ClusteredEventBus, type EventBus } from '../../backend/src/eventbus/index.js';
import { startNode } from '../../backend/src/main.js';
import { ClusterFixture } from '../helpers/cluster-fixture.js';
import { startProcess, stopAll, waitFor } from '../infra/proc.js';

const N = Number(process.env.BENCH_MESSAGES ?? 200_000);
const LAT_N = Number(process.env.BENCH_REQUESTS ?? 10_000);
const payload = { text: 'x'.repeat(64), user: 'bench', room: 'general' };

interface Row {
  scenario: string;
  msgsPerSec?: number;
  p50?: number;
  p99?: number;
  max?: number;
}

function percentiles(samples: number[]): { p50: number; p99: number; max: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { p50: at(0.5), p99: at(0.99), max: s[s.length - 1]! };
}

const now = () => Number(process.hrtime.bigint()) / 1e6;

async function requestLatency(bus: EventBus, address: string): Promise<number[]> {
  for (let i = 0; i < 500; i++) await bus.request(address, payload); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < LAT_N; i++) {
    const t0 = now();
    await bus.request(address, payload);
    samples.push(now() - t0);
  }
  return samples;
}

async function benchLocal(rows: Row[]): Promise<void> {
  const bus = new ClusteredEventBus({ cluster: new StandaloneClusterManager() });
  await bus.start();
  let count = 0;
  let done: () => void = () => {};
  const finished = new Promise<void>((r) => (done = r));
  bus.consumer('bench.sink', () => {
    if (++count === N) done();
  });
  bus.consumer('bench.echo', (m) => m.reply(m.body));
  const t0 = now();
  for (let i = 0; i < N; i++) bus.send('bench.sink', payload);
  await finished;
  const secs = (now() - t0) / 1000;
  const lat = percentiles(await requestLatency(bus, 'bench.echo'));
  rows.push({ scenario: 'local bus, 1 process (send / request)', msgsPerSec: N / secs, ...lat });
  await bus.close();
}

async function benchRawTcp(rows: Row[]): Promise<number> {
  const script = fileURLToPath(new URL('./raw-tcp-peer.ts', import.meta.url));
  const peer = startProcess('raw-peer', process.execPath, ['--import', 'tsx', script]);
  const m = (await peer.waitForOutput(/raw peer listening on (\d+)/, 30_000)) as RegExpMatchArray;
  const socket = net.connect({ host: '127.0.0.1', port: Number(m[1]) });
  socket.setNoDelay(true);
  await new Promise((r) => socket.once('connect', r));
  const frame = (kind: number, body: Buffer) => {
    const out = Buffer.allocUnsafe(5 + body.length);
    out.writeUInt32BE(1 + body.length, 0);
    out.writeUInt8(kind, 4);
    body.copy(out, 5);
    return out;
  };
  let pendingEcho: (() => void) | undefined;
  let lastCount = 0;
  let buf: Buffer = Buffer.alloc(0);
  socket.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    while (buf.length >= 5 && buf.length >= 4 + buf.readUInt32BE(0)) {
      const len = buf.readUInt32BE(0);
      if (buf.readUInt8(4) === 3) lastCount = buf.readUInt32BE(5);
      buf = buf.subarray(4 + len);
      pendingEcho?.();
    }
  });
  const askCount = () =>
    new Promise<number>((resolve) => {
      pendingEcho = () => resolve(lastCount);
      socket.write(frame(3, Buffer.alloc(0)));
    });
  const t0 = now();
  for (let i = 0; i < N; i++) socket.write(frame(1, Buffer.from(JSON.stringify(payload))));
  await waitFor('raw peer count', async () => (await askCount()) >= N, 120_000, 20);
  const secs = (now() - t0) / 1000;
  const samples: number[] = [];
  for (let i = 0; i < LAT_N + 500; i++) {
    const t1 = now();
    await new Promise<void>((resolve) => {
      pendingEcho = resolve;
      socket.write(frame(2, Buffer.from(JSON.stringify(payload))));
    });
    if (i >= 500) samples.push(now() - t1);
  }
  socket.destroy();
  await peer.stop();
  const rate = N / secs;
  rows.push({
    scenario: 'peer: bare TCP, 2 processes (stream / echo)',
    msgsPerSec: rate,
    ...percentiles(samples),
  });
  return rate;
}

async function benchCluster(rows: Row[]): Promise<void> {
  // The nodes run the whole product (chat service and store included), as in production.
  const fx = await ClusterFixture.start({ nodes: 2, env: { LOG_LEVEL: 'warn' } });
  const remote = fx.nodes;
  const local = await startNode(
    loadConfig({
      ...fx.env(),
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      PORT: '0',
      GRPC_PORT: '0',
      ADMIN_PORT: '0',
      CLUSTER_HOST: '127.0.0.1',
    }),
  );
  try {
    for (const n of remote) await n.consumer('bench.sink', 'count');
    await remote[0]!.consumer('bench.echo', 'echo');
    await waitFor(
      'subscriptions to reach node-0',
      () => local.cluster.subscribers('bench.sink').length === 2,
      20_000,
    );
    await waitFor('echo subscription', () => local.cluster.subscribers('bench.echo').length === 1, 20_000);

    const t0 = now();
    for (let i = 0; i < N; i++) local.bus.send('bench.sink', payload);
    await waitFor(
      'all sends to arrive',
      async () => (await remote[0]!.count('bench.sink')) + (await remote[1]!.count('bench.sink')) >= N,
      300_000,
      20,
    );
    const secs = (now() - t0) / 1000;
    const lat = percentiles(await requestLatency(local.bus, 'bench.echo'));
    rows.push({ scenario: 'clustered bus, 3 nodes (send / request across)', msgsPerSec: N / secs, ...lat });

    // Concurrent requests: 64 in flight, the shape of many clients using one node.
    const total = Math.min(N, 50_000);
    let sent = 0;
    const t1 = now();
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (sent < total) {
          sent += 1;
          await local.bus.request('bench.echo', payload);
        }
      }),
    );
    rows.push({
      scenario: 'clustered bus, 64 concurrent requests',
      msgsPerSec: total / ((now() - t1) / 1000),
    });
  } finally {
    await local.stop();
    await fx.stop();
  }
}

function printTable(rows: Row[], peerRate: number): void {
  const fmt = (n: number | undefined, digits = 0) =>
    n === undefined
      ? '—'
      : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  console.log(
    `\nEvent bus benchmark — ${N.toLocaleString('en-US')} messages of ${JSON.stringify(payload).length} bytes, ${LAT_N.toLocaleString('en-US')} sequential requests\n`,
  );
  console.log('| scenario | msgs/s | vs bare TCP | request p50 ms | p99 ms | max ms |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const ratio = r.msgsPerSec === undefined ? '—' : `${(r.msgsPerSec / peerRate).toFixed(2)}×`;
    console.log(
      `| ${r.scenario} | ${fmt(r.msgsPerSec)} | ${ratio} | ${fmt(r.p50, 3)} | ${fmt(r.p99, 3)} | ${fmt(r.max, 3)} |`,
    );
  }
}

const rows: Row[] = [];
try {
  const peerRate = await benchRawTcp(rows);
  await benchLocal(rows);
  await benchCluster(rows);
  printTable(rows, peerRate);
} finally {
  await stopAll();
}
process.exit(0);
