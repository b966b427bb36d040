/// <reference types="node" />
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { LatencyHistogram } from './histogram.js';
import type { Violation } from './ledger.js';
import { validateProbeOptions } from './options.js';
import { slowest } from './rejoin-traces.js';
import type { ProbeReport, RunProbeOptions } from './run.js';
import { SelfMonitor, selfWarnings } from './self-monitor.js';
import { slowestDeliveries } from './slowest-deliveries.js';
import { percentiles } from './stats.js';
import type { WorkerInput, WorkerMessage } from './worker.js';

type WorkerResult = Extract<WorkerMessage, { type: 'done' }>['result'];

const MAX_VIOLATIONS = 20;

/**
 * `--workers N`: the rooms (and their clients) dealt round-robin to N worker threads, each a probe
 * of its own with its share of the rate; they connect, then start sending together, and their
 * reports merge into one (latency histograms and per-client gaps merged, not averaged).
 */
export async function runProbeWorkers(
  options: RunProbeOptions,
  workers: number,
): Promise<ProbeReport & { workers: number }> {
  validateProbeOptions(options);
  const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const runId = randomBytes(5).toString('hex');
  const roomPrefix = options.roomPrefix ?? `probe-${runId}`;
  const monitor = new SelfMonitor();
  const clientsOf = (w: number) =>
    Array.from({ length: options.clients }, (_, i) => i).filter((i) => (i % options.rooms) % workers === w)
      .length;
  const here = import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js';
  let connected = 0;
  const threads: Worker[] = [];
  const abortAll = () => threads.forEach((t) => t.postMessage({ type: 'abort' }));
  options.signal?.addEventListener('abort', abortAll, { once: true });
  const markAll = () => threads.forEach((t) => t.postMessage({ type: 'mark' }));
  options.marks?.addEventListener('mark', markAll);
  const results = await Promise.all(
    Array.from({ length: workers }, (_, w) => {
      const share = clientsOf(w) / options.clients;
      const input: WorkerInput = {
        options: {
          urls: options.urls,
          clients: options.clients,
          rooms: options.rooms,
          rate: options.rate * share,
          durationS: options.durationS,
          settleS: options.settleS,
          connectTimeoutS: options.connectTimeoutS,
          runId,
          roomPrefix,
          slice: { index: w, count: workers },
          ...(options.tokenSecret !== undefined ? { tokenSecret: options.tokenSecret } : {}),
          ...(options.clientOptions ? { clientOptions: options.clientOptions } : {}),
          ...(options.progressEveryMs ? { progressEveryMs: options.progressEveryMs } : {}),
        },
      };
      const script = new URL(here, import.meta.url);
      // From source (tests, `node --import tsx …/cli.ts`) the thread registers the TypeScript
      // loader itself before loading the script: loader hooks are not inherited by threads.
      const worker = here.endsWith('.ts')
        ? new Worker(
            `import(${JSON.stringify(tsxApi())}).then((tsx) => tsx.tsImport(${JSON.stringify(script.href)}, ${JSON.stringify(script.href)}))`,
            { eval: true, workerData: input },
          )
        : new Worker(script, { workerData: input });
      threads.push(worker);
      return new Promise<WorkerResult | string>((settle) => {
        const resolve = (r: WorkerResult | string) => {
          // A worker that ends before all are connected (could not connect): the others stop too.
          if (connected < workers) abortAll();
          settle(r);
        };
        worker.on('message', (m: WorkerMessage) => {
          if (m.type === 'log') log(m.line.replace(/^probe: /, `probe[w${w}]: `));
          else if (m.type === 'connected') {
            if (++connected === workers) {
              log('probe: running');
              for (const t of threads) t.postMessage({ type: 'go' });
            }
          } else if (m.type === 'done') resolve(m.result);
          else resolve(m.error);
        });
        worker.on('error', (err) => resolve(`worker ${w} failed: ${err.message}`));
        worker.on('exit', () => resolve(`worker ${w} exited without a report`));
      });
    }),
  );
  options.signal?.removeEventListener('abort', abortAll);
  options.marks?.removeEventListener('mark', markAll);
  monitor.stop();
  return merge(options, results, workers, runId, roomPrefix, monitor);
}

/** tsx's ESM API (`tsImport`), as a file URL. */
function tsxApi(): string {
  const pkg = createRequire(import.meta.url).resolve('tsx/package.json');
  return pathToFileURL(join(dirname(pkg), 'dist', 'esm', 'api', 'index.mjs')).href;
}

function merge(
  options: RunProbeOptions,
  results: (WorkerResult | string)[],
  workers: number,
  runId: string,
  roomPrefix: string,
  monitor: SelfMonitor,
): ProbeReport & { workers: number } {
  const done = results.filter((r): r is WorkerResult => typeof r !== 'string');
  const failures = results.filter((r): r is string => typeof r === 'string');
  const reports = done.map((d) => d.report);
  const sum = (f: (r: ProbeReport) => number) => reports.reduce((n, r) => n + f(r), 0);
  const latency = new LatencyHistogram();
  const ackLatency = new LatencyHistogram();
  const rejoin = new LatencyHistogram();
  for (const d of done) {
    latency.merge(LatencyHistogram.fromJSON(d.latency));
    ackLatency.merge(LatencyHistogram.fromJSON(d.ackLatency));
    rejoin.merge(LatencyHistogram.fromJSON(d.rejoin));
  }
  const gaps = percentiles(done.flatMap((d) => d.gaps));
  const violations: Violation[] = reports.flatMap((r) => r.violations).slice(0, MAX_VIOLATIONS);
  const nodes = (which: 'start' | 'end') => {
    const out: Record<string, number> = {};
    for (const r of reports) for (const [n, c] of Object.entries(r.nodes[which])) out[n] = (out[n] ?? 0) + c;
    return out;
  };
  const aborted = [...failures, ...reports.flatMap((r) => (r.aborted ? [r.aborted] : []))];
  const store = {
    checked: reports.length === workers && reports.every((r) => r.store.checked),
    messages: sum((r) => r.store.messages),
    lost: sum((r) => r.store.lost),
    duplicates: sum((r) => r.store.duplicates),
    checkedDuringRun: sum((r) => r.store.checkedDuringRun),
    errors: reports.flatMap((r) => r.store.errors),
  };
  const v = {
    sent: sum((r) => r.sent),
    acked: sum((r) => r.acked),
    failed: sum((r) => r.failed),
    unacked: sum((r) => r.unacked),
    delivered: sum((r) => r.delivered),
    expected: sum((r) => r.expected),
    lost: sum((r) => r.lost),
    duplicates: sum((r) => r.duplicates),
    outOfOrder: sum((r) => r.outOfOrder),
    reconnects: sum((r) => r.reconnects),
  };
  const reasons: string[] = [];
  if (aborted.length) reasons.push(`aborted: ${aborted.join('; ')}`);
  if (v.lost > 0) reasons.push(`${v.lost} acked deliveries lost`);
  if (v.duplicates > 0) reasons.push(`${v.duplicates} duplicates`);
  if (v.outOfOrder > 0) reasons.push(`${v.outOfOrder} deliveries out of order`);
  if (!aborted.length && v.unacked > 0)
    reasons.push(`${v.unacked} messages still unacked after settling ${options.settleS} s`);
  if (!aborted.length && v.acked === 0) reasons.push('nothing was acked');
  if (!aborted.length && !store.checked)
    reasons.push(`stored history not verified: ${store.errors.join('; ')}`);
  const latencyMs = latency.percentiles();
  const probeEventLoopDelayMs = {
    p99: Math.max(0, ...reports.map((r) => r.probeEventLoopDelayMs.p99)),
    max: Math.max(0, ...reports.map((r) => r.probeEventLoopDelayMs.max)),
  };
  return {
    ok: reasons.length === 0,
    ...v,
    latencyMs,
    ackLatencyMs: ackLatency.percentiles(),
    maxDeliveryGapMs: gaps.max,
    p99DeliveryGapMs: gaps.p99,
    store,
    violationCount: sum((r) => r.violationCount),
    violations,
    clients: options.clients,
    rooms: options.rooms,
    rate: options.rate,
    durationS: options.durationS,
    sendingS: Math.max(0, ...reports.map((r) => r.sendingS)),
    settleS: Math.max(0, ...reports.map((r) => r.settleS)),
    settled: reports.length === workers && reports.every((r) => r.settled),
    nodes: { start: nodes('start'), end: nodes('end') },
    runId,
    roomPrefix,
    urls: options.urls,
    reasons,
    ...(aborted.length ? { aborted: aborted.join('; ') } : {}),
    // Threads share the process: its peak RSS is the whole probe's; loop delay is the worst thread's.
    probeEventLoopDelayMs,
    probeMaxRssMb: monitor.maxRssMb(),
    warnings: selfWarnings(probeEventLoopDelayMs, latencyMs),
    rejoinMs: { ...rejoin.percentiles(), count: rejoin.count },
    slowestRejoins: slowest(reports.flatMap((r) => r.slowestRejoins)),
    slowestDeliveries: slowestDeliveries(reports.flatMap((r) => r.slowestDeliveries)),
    ...markOf(reports),
    workers,
  };
}

/** Every worker got the same mark: the backlog drained when the slowest one's did. */
function markOf(reports: ProbeReport[]): Pick<ProbeReport, 'mark'> {
  const marks = reports.flatMap((r) => (r.mark ? [r.mark] : []));
  if (marks.length === 0) return {};
  return {
    mark: {
      atS: Math.min(...marks.map((m) => m.atS)),
      drainedMs: Math.max(...marks.map((m) => m.drainedMs)),
    },
  };
}
