/// <reference types="node" />
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Room } from '../room.js';
import { canaryMetricsText } from './canary-metrics.js';
import { ProbeLedger } from './ledger.js';
import { type CanaryOptions, type ProbeOptions, UsageError } from './options.js';
import { closeAll, probeClient, sendOne } from './clients.js';
import { describe, ProbeAbort } from './failures.js';
import type { RunProbeOptions } from './run-options.js';
import { type LoopDelay, SelfMonitor } from './self-monitor.js';
import { sleep, within } from './waits.js';

export interface CanaryReport {
  canary: true;
  /** Nothing lost, duplicated or reordered while it ran (the metrics tell the same). */
  ok: boolean;
  runS: number;
  sent: number;
  acked: number;
  failed: number;
  unacked: number;
  delivered: number;
  lost: number;
  duplicates: number;
  outOfOrder: number;
  reconnects: number;
  latencyMs: { p50: number; p99: number; max: number };
  probeEventLoopDelayMs: LoopDelay;
  probeMaxRssMb: number;
  clients: number;
  rooms: number;
  rate: number;
  lossAfterS: number;
  runId: string;
  roomPrefix: string;
  metricsUrl: string;
  aborted?: string;
}

const SWEEP_EVERY_MS = 1_000;
const LOOP_DELAY_WINDOW_MS = 10_000;
const CONNECT_CONCURRENCY = 16;

/**
 * The canary: a few clients that send continuously until `signal` aborts (SIGTERM), judge every
 * message `lossAfterS` after its ack (lost unless every member of its room holds it intact), forget
 * what they judged (memory stays flat for days) and serve the counts as Prometheus metrics. Throws
 * UsageError when the metrics port cannot be listened on.
 */
export async function runCanary(
  options: ProbeOptions & { canary: CanaryOptions } & Pick<
      RunProbeOptions,
      'log' | 'signal' | 'clientOptions' | 'progressEveryMs'
    >,
): Promise<CanaryReport> {
  const { lossAfterS, metricsPort, metricsHost } = options.canary;
  const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const signal = options.signal;
  if (signal) setMaxListeners(0, signal);
  const runId = randomBytes(5).toString('hex');
  const roomPrefix = options.roomPrefix ?? `canary-${runId}`;
  const roomNames = Array.from({ length: options.rooms }, (_, r) => `${roomPrefix}-${r}`);
  const specs = Array.from({ length: options.clients }, (_, i) => ({
    user: `canary-${runId}-${i}`,
    room: roomNames[i % options.rooms]!,
  }));
  // First, so that a port in use stops the canary before anything else starts. Scraped only once
  // the rest below exists (a request is handled after this function's next await at the earliest).
  const server = await listen(metricsHost, metricsPort, () => canaryMetricsText(figures()));
  const monitor = new SelfMonitor();
  const ledger = new ProbeLedger(runId, specs, {
    onViolation: (v) => log(`probe: canary ${v.kind} ${JSON.stringify(v)}`),
  });
  let loopDelay = monitor.takeRecentLoopDelay();
  const loopTimer = setInterval(() => (loopDelay = monitor.takeRecentLoopDelay()), LOOP_DELAY_WINDOW_MS);
  loopTimer.unref();

  // A canary runs for days: every connection attempt gets a fresh day-long token.
  const clients = specs.map((spec, i) => probeClient(options, spec.user, i, ledger, 86_400));

  const figures = () => {
    const p = ledger.progress();
    const c = ledger.counts();
    return {
      ...p,
      lost: c.lostOnline,
      unacked: c.unackedOnline,
      clients: clients.length,
      clientsOpen: clients.filter((x) => x.state === 'open').length,
      latency: ledger.latency,
      loopDelay,
      rssBytes: process.memoryUsage.rss(),
    };
  };
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const metricsUrl = `http://${host}:${address.port}/metrics`;
  log(
    `probe: canary ${runId}: ${options.clients} clients in ${options.rooms} rooms (${roomPrefix}-*) via ${options.urls.join(', ')}, ${options.rate} msg/s`,
  );
  log(`probe: canary metrics on ${metricsUrl}`);

  const start = performance.now();
  let aborted: string | undefined;
  let closing = false;
  const sweepTimer = setInterval(() => ledger.sweep(performance.now(), lossAfterS * 1000), SWEEP_EVERY_MS);
  const progressTimer = setInterval(() => {
    const f = figures();
    log(
      `probe: canary t=${((performance.now() - start) / 1000).toFixed(0)}s sent=${f.sent} acked=${f.acked} ` +
        `delivered=${f.delivered} lost=${f.lost} duplicates=${f.duplicates} outOfOrder=${f.outOfOrder} ` +
        `reconnects=${f.reconnects} open=${f.clientsOpen}/${f.clients} rss=${Math.round(f.rssBytes / 1048576)}MB`,
    );
  }, options.progressEveryMs ?? 60_000);
  progressTimer.unref();

  try {
    // Connect and join, without a deadline: a canary started before the servers waits for them.
    const rooms: Room[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(CONNECT_CONCURRENCY, clients.length) }, async () => {
        while (next < clients.length) {
          const i = next++;
          for (;;) {
            if (signal?.aborted) throw new ProbeAbort('interrupted while connecting');
            try {
              await within(clients[i]!.connect(), performance.now() + 30_000, signal);
              const room = await within(clients[i]!.join(specs[i]!.room), performance.now() + 30_000, signal);
              room.on('message', (m) => ledger.deliver(i, m, performance.now()));
              rooms[i] = room;
              break;
            } catch (err) {
              if (err instanceof ProbeAbort) throw err;
              log(`probe: canary client ${specs[i]!.user} not joined yet (${describe(err)}); retrying`);
              await sleep(2_000, signal);
            }
          }
        }
      }),
    );
    log('probe: running');
    const sendStart = performance.now();
    const intervalMs = 1000 / options.rate;
    for (let k = 0; !signal?.aborted;) {
      const due = Math.floor((performance.now() - sendStart) / intervalMs) + 1;
      while (k < due) {
        const i = k % clients.length;
        sendOne(ledger, rooms[i]!, i, k++, () => closing);
      }
      await sleep(sendStart + k * intervalMs - performance.now(), signal);
    }
  } catch (err) {
    aborted = err instanceof ProbeAbort ? err.message : `canary failed: ${describe(err)}`;
  } finally {
    clearInterval(sweepTimer);
    clearInterval(progressTimer);
  }
  if (aborted && signal?.aborted) aborted = undefined; // SIGTERM while connecting is a normal stop
  closing = true;
  await closeAll(clients, log);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  clearInterval(loopTimer);
  monitor.stop();
  const f = figures();
  return {
    canary: true,
    ok: f.lost === 0 && f.duplicates === 0 && f.outOfOrder === 0 && aborted === undefined,
    runS: Math.round((performance.now() - start) / 100) / 10,
    sent: f.sent,
    acked: f.acked,
    failed: f.failed,
    unacked: f.unacked,
    delivered: f.delivered,
    lost: f.lost,
    duplicates: f.duplicates,
    outOfOrder: f.outOfOrder,
    reconnects: f.reconnects,
    latencyMs: ledger.latency.percentiles(),
    probeEventLoopDelayMs: monitor.loopDelay(),
    probeMaxRssMb: monitor.maxRssMb(),
    clients: options.clients,
    rooms: options.rooms,
    rate: options.rate,
    lossAfterS,
    runId,
    roomPrefix,
    metricsUrl,
    ...(aborted !== undefined ? { aborted } : {}),
  };
}

/** The metrics endpoint; a port in use (or not allowed) is a usage error naming the flag. */
function listen(host: string, port: number, text: () => string): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url?.split('?')[0] === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(text());
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found: the metrics are at /metrics\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why =
        err.code === 'EADDRINUSE'
          ? `port ${port} on ${host} is in use (another canary or exporter?); pick another with --metrics-port`
          : `cannot listen on ${host}:${port}: ${err.message}`;
      reject(new UsageError(`--metrics-port: ${why}`));
    });
    server.listen(port, host, () => resolve(server));
  });
}
