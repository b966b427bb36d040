/**
 * Where a Switchboard node's memory per idle connection goes: heap snapshots of one node before
 * and after N idle clients (registered on a room, as in the footprint row), summarised by object
 * type, largest growth first. A diagnostic, not a benchmark row:
 *
 *   node --import tsx tests/bench/realtime/heap-per-connection.ts [connections, default 2000]
 *
 * It found the Fastify request/reply (and Node's IncomingMessage/ServerResponse) that a routed
 * WebSocket upgrade kept alive per socket: ~3 KB of the 10 KB an idle connection cost.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LoadGen, sleep } from './harness.js';
import { startSwitchboard } from './servers.js';

const count = Number(process.argv[2] ?? 2000);
if (!Number.isInteger(count) || count < 1) {
  console.error(`connections: expected a positive integer, got ${JSON.stringify(process.argv[2])}`);
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), 'sb-heap-'));
const server = await startSwitchboard('switchboard-heap', {
  BRIDGE_IDLE_TIMEOUT_MS: '3600000',
  NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${dir}`,
});

type Summary = Map<string, { n: number; size: number }>;

/** Asks the node for a snapshot and waits (at most 2 min) until the file is complete. */
async function snapshot(): Promise<Summary> {
  const before = new Set(readdirSync(dir));
  process.kill(server.proc.pid!, 'SIGUSR2');
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    await sleep(1000);
    const file = readdirSync(dir).find((f) => !before.has(f) && f.endsWith('.heapsnapshot'));
    if (!file) continue;
    const text = readFileSync(join(dir, file), 'utf8');
    if (text.trimEnd().endsWith(']}')) return summarize(JSON.parse(text) as HeapSnapshot);
  }
  throw new Error('no complete heap snapshot within 2 minutes');
}

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

function summarize(s: HeapSnapshot): Summary {
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const [width, typeAt, nameAt, sizeAt] = [
    fields.length,
    fields.indexOf('type'),
    fields.indexOf('name'),
    fields.indexOf('self_size'),
  ];
  const out: Summary = new Map();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + typeAt]!]!;
    const key = type === 'object' || type === 'closure' ? `${type} ${s.strings[s.nodes[i + nameAt]!]}` : type;
    const e = out.get(key) ?? { n: 0, size: 0 };
    e.n += 1;
    e.size += s.nodes[i + sizeAt]!;
    out.set(key, e);
  }
  return out;
}

const gen = LoadGen.start();
try {
  await sleep(1000);
  const idle = await snapshot();
  await gen.call(
    { cmd: 'connect', kind: 'sb', urls: [server.url], count, room: 'idle', ping: false },
    300_000,
  );
  await sleep(3000);
  const loaded = await snapshot();
  const growth = [...loaded]
    .map(([k, v]) => ({ k, n: v.n - (idle.get(k)?.n ?? 0), size: v.size - (idle.get(k)?.size ?? 0) }))
    .sort((a, b) => b.size - a.size);
  const total = growth.reduce((t, g) => t + g.size, 0);
  console.log(`heap growth per connection: ${(total / count).toFixed(0)} bytes (${count} connections)\n`);
  console.log('| bytes/conn | objects/conn | type |\n|---:|---:|---|');
  for (const g of growth.slice(0, 30).filter((x) => x.size > 0))
    console.log(`| ${(g.size / count).toFixed(0)} | ${(g.n / count).toFixed(2)} | ${g.k} |`);
} finally {
  await gen.stop();
  await server.proc.stop();
  rmSync(dir, { recursive: true, force: true });
}
