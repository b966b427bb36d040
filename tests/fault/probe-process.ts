/**
 * Runs `switchboard-probe` (the operators' tool, messages-lib/src/probe) as its own process, as an
 * operator would, and hands back its one-line JSON verdict.
 */
import { fileURLToPath } from 'node:url';
import type { ProbeOptions, ProbeReport } from '../../messages-lib/src/probe/index.js';
import { type ManagedProcess, startProcess } from '../infra/proc.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const cli = fileURLToPath(new URL('../../messages-lib/src/probe/cli.ts', import.meta.url));

/** The CLI's JSON line is the probe's own report: the type it is built from. */
export type ProbeVerdict = ProbeReport;

export interface ProbeRun {
  proc: ManagedProcess;
  /** Resolves once every client joined (the probe printed `probe: running`). */
  running(): Promise<void>;
  /** Resolves with the exit code and the parsed JSON line. */
  result(): Promise<{ code: number | null; verdict: ProbeVerdict }>;
}

export function startProbe(
  url: string,
  opts: Pick<ProbeOptions, 'clients' | 'rooms' | 'rate' | 'durationS' | 'settleS'> &
    Partial<Pick<ProbeOptions, 'roomPrefix' | 'connectTimeoutS'>>,
): ProbeRun {
  const args = [
    '--import',
    'tsx',
    cli,
    '--url',
    url,
    '--clients',
    String(opts.clients),
    '--rooms',
    String(opts.rooms),
    '--rate',
    String(opts.rate),
    '--duration',
    String(opts.durationS),
    '--settle',
    String(opts.settleS),
    '--json-only',
    ...(opts.roomPrefix ? ['--room-prefix', opts.roomPrefix] : []),
    ...(opts.connectTimeoutS ? ['--connect-timeout', String(opts.connectTimeoutS)] : []),
  ];
  const proc = startProcess('probe', process.execPath, args, { cwd: repoRoot });
  const limitMs = (60 + opts.durationS + opts.settleS + 60) * 1000;
  return {
    proc,
    running: async () => {
      await proc.waitForOutput('probe: running', Math.max(90, (opts.connectTimeoutS ?? 0) + 60) * 1000);
    },
    result: async () => {
      const timer = setTimeout(() => proc.kill('SIGKILL'), limitMs);
      const exit = await proc.exited.finally(() => clearTimeout(timer));
      const line = proc
        .output()
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('{') && l.includes('"lost"'));
      if (!line)
        throw new Error(`the probe printed no verdict (exit ${exit.code}):\n${proc.output().slice(-3000)}`);
      return { code: exit.code, verdict: JSON.parse(line) as ProbeVerdict };
    },
  };
}

/** One line per scenario, for the test log and docs/operations.md. */
export function summary(name: string, v: ProbeVerdict, extra: Record<string, unknown> = {}): string {
  return `${name}: ${JSON.stringify({
    clients: v.clients,
    rooms: v.rooms,
    sent: v.sent,
    acked: v.acked,
    failed: v.failed,
    delivered: v.delivered,
    expected: v.expected,
    lost: v.lost,
    duplicates: v.duplicates,
    outOfOrder: v.outOfOrder,
    reconnects: v.reconnects,
    latencyMs: v.latencyMs,
    maxDeliveryGapMs: v.maxDeliveryGapMs,
    ...(v.rejoinMs.count > 0 ? { rejoinMs: v.rejoinMs } : {}),
    // The measurer's own state: a slow scenario with a stalled probe says nothing of the server.
    probeEventLoopDelayMs: v.probeEventLoopDelayMs,
    ...(v.warnings.length > 0 ? { warnings: v.warnings } : {}),
    ...extra,
  })}${
    v.rejoinMs.max > SLOW_REJOIN_MS
      ? `\n      slowest rejoins: ${JSON.stringify(v.slowestRejoins, null, 1).replace(/\n\s*/g, ' ')}`
      : ''
  }${
    v.latencyMs.max > SLOW_REJOIN_MS
      ? `\n      slowest deliveries: ${JSON.stringify(v.slowestDeliveries, null, 1).replace(/\n\s*/g, ' ')}`
      : ''
  }`;
}

/** Past this, the slowest reconnections are printed step by step (issue 20's gap goal is 2 s). */
const SLOW_REJOIN_MS = 1_000;
