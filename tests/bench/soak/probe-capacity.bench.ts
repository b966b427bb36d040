/**
 * How much load one probe worker (one event loop) holds with its own loop delay ≤ 20 ms (not part
 * of the test suite): `node --import tsx tests/bench/soak/probe-capacity.bench.ts [--seconds 30]`.
 * One embedded node; the probe (compiled, one process, one worker) at rising loads, each a fresh
 * run; prints one line per step and a JSON summary. On a small machine the node shares the cores,
 * so the figures are a floor for a probe on a machine of its own.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ProbeReport } from '../../../messages-lib/src/probe/index.js';
import { stopAll } from '../../infra/proc.js';
import { cpuMicros, repoRoot, startServer } from '../realtime/harness.js';
import { startSwitchboard } from '../realtime/servers.js';

const STEPS = [
  { clients: 500, rooms: 50, rate: 500 },
  { clients: 1_000, rooms: 100, rate: 1_000 },
  { clients: 1_000, rooms: 50, rate: 2_000 },
  { clients: 2_000, rooms: 100, rate: 2_000 },
];

const log = (line: string): void => void process.stderr.write(`${line}\n`);

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string' } } });
  const seconds = Number(values.seconds ?? 30);
  execFileSync(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-b', 'messages-lib'], {
    cwd: repoRoot,
    stdio: 'inherit',
  });
  const rows = [];
  for (const step of STEPS) {
    // A fresh node per step: the previous step's history does not weigh on the next.
    const server = await startSwitchboard('switchboard', { BRIDGE_RATE_PER_SEC: '200' });
    const cpu0 = cpuMicros(server.proc.pid);
    const probe = startServer('probe', process.execPath, [
      join(repoRoot, 'messages-lib/dist/probe/cli.js'),
      '--url',
      server.url,
      '--clients',
      String(step.clients),
      '--rooms',
      String(step.rooms),
      '--rate',
      String(step.rate),
      '--duration',
      String(seconds),
      '--connect-timeout',
      '120',
      '--json-only',
    ]);
    await probe.exited;
    const serverCpuS = (cpuMicros(server.proc.pid) - cpu0) / 1e6;
    await server.proc.stop(30_000);
    const line = probe
      .output()
      .split('\n')
      .find((l) => l.startsWith('{"ok":'));
    if (!line) throw new Error(`no verdict:\n${probe.output().slice(-2000)}`);
    const r = JSON.parse(line) as ProbeReport;
    const row = {
      ...step,
      deliveriesPerS: Math.round(r.delivered / r.sendingS),
      ok: r.ok,
      latencyMs: r.latencyMs,
      probeEventLoopDelayMs: r.probeEventLoopDelayMs,
      probeMaxRssMb: r.probeMaxRssMb,
      serverCpuS: Math.round(serverCpuS),
      warnings: r.warnings.length,
    };
    log(`capacity: ${JSON.stringify(row)}`);
    rows.push(row);
  }
  process.stdout.write(`${JSON.stringify({ seconds, rows }, null, 1)}\n`);
}

try {
  await main();
} finally {
  await stopAll();
}
