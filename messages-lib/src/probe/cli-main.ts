/// <reference types="node" />
import { runCanary } from './canary.js';
import { parseProbeArgs, USAGE, UsageError } from './options.js';
import { type ProbeReport, runProbe } from './run.js';
import { runProbeWorkers } from './workers.js';

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
  signal?: AbortSignal;
  /** `mark` events (the CLI: SIGUSR2): see `RunProbeOptions.marks`. */
  marks?: EventTarget;
}

/** The CLI without the process around it: returns the exit code (0 clean, 1 not clean, 2 bad usage). */
export async function runProbeCli(argv: string[], io: CliIo): Promise<number> {
  let options;
  try {
    options = parseProbeArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`switchboard-probe: ${err.message}`);
    io.err('run switchboard-probe --help for the options');
    return 2;
  }
  if (options === 'help') {
    io.out(USAGE.trimEnd());
    return 0;
  }
  if (options.canary) {
    try {
      const report = await runCanary({
        ...options,
        canary: options.canary,
        log: io.err,
        ...(io.signal ? { signal: io.signal } : {}),
      });
      io.out(JSON.stringify(report));
      return report.aborted === undefined ? 0 : 1;
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      io.err(`switchboard-probe: ${err.message}`);
      return 2;
    }
  }
  const runOptions = {
    ...options,
    log: io.err,
    ...(io.signal ? { signal: io.signal } : {}),
    ...(io.marks ? { marks: io.marks } : {}),
  };
  const report =
    options.workers !== undefined && options.workers > 1
      ? await runProbeWorkers(runOptions, options.workers)
      : await runProbe(runOptions);
  if (!options.jsonOnly) for (const line of summary(report)) io.out(line);
  io.out(JSON.stringify(report));
  return report.ok ? 0 : 1;
}

function summary(r: ProbeReport): string[] {
  const lines = [
    `${r.ok ? 'PASS' : 'FAIL'}: ${r.clients} clients, ${r.rooms} rooms, ${r.sendingS} s at ${r.rate}/s` +
      ` (settled: ${r.settled ? `yes, in ${r.settleS} s` : 'no'})`,
    `  sent ${r.sent}  acked ${r.acked}  failed ${r.failed}  unacked ${r.unacked}`,
    `  delivered ${r.delivered} of ${r.expected} expected  lost ${r.lost}  duplicates ${r.duplicates}  out of order ${r.outOfOrder}`,
    `  stored history: ${r.store.checked ? `${r.store.messages} messages checked` : 'NOT checked'}`,
    `  reconnects ${r.reconnects}  latency p50/p99/max ${r.latencyMs.p50}/${r.latencyMs.p99}/${r.latencyMs.max} ms` +
      `  longest delivery gap ${r.maxDeliveryGapMs} ms (p99 over clients ${r.p99DeliveryGapMs} ms)`,
  ];
  if (r.rejoinMs.count > 0) {
    lines.push(
      `  away per reconnection (connection lost → room joined again) p50/p99/max ${r.rejoinMs.p50}/${r.rejoinMs.p99}/${r.rejoinMs.max} ms over ${r.rejoinMs.count}`,
    );
    const slowest = r.slowestRejoins[0];
    if (slowest) lines.push(`  the slowest (${slowest.client}): ${slowest.steps.join(', ')}`);
  }
  lines.push(
    `  the probe itself: event loop delay p99/max ${r.probeEventLoopDelayMs.p99}/${r.probeEventLoopDelayMs.max} ms, peak RSS ${r.probeMaxRssMb} MB`,
  );
  if (r.mark) {
    lines.push(
      `  marked at ${r.mark.atS} s: what was sent before it was acked and delivered ${r.mark.drainedMs} ms later`,
    );
  }
  for (const reason of r.reasons) lines.push(`  ✗ ${reason}`);
  for (const warning of r.warnings) lines.push(`  ! ${warning}`);
  for (const v of r.violations) lines.push(`  ${v.kind} ${v.room}${v.user ? ` ${v.user}` : ''}: ${v.detail}`);
  return lines;
}
