/// <reference types="node" />
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Room } from '../room.js';
import { closeAll, countNodes, joinRetrying, probeClient, sendOne, tokenLifetimeS } from './clients.js';
import { describe, ProbeAbort } from './failures.js';
import { LatencyHistogram } from './histogram.js';
import { checkStoredSegment, readHistory } from './history-read.js';
import { ProbeLedger } from './ledger.js';
import { validateProbeOptions } from './options.js';
import { RejoinTraces } from './rejoin-traces.js';
import type { ProbeReport, RawProbeResult } from './report.js';
import type { RunProbeOptions } from './run-options.js';
import { SelfMonitor, selfWarnings } from './self-monitor.js';
import { verify } from './verify.js';
import { forEachLimited, sleep, within } from './waits.js';

export { probeClient, sendOne } from './clients.js';
export { describe, ProbeAbort } from './failures.js';
export { readHistory } from './history-read.js';
export type { ProbeReport, ProbeTick, RawProbeResult } from './report.js';
export type { RunProbeOptions } from './run-options.js';
export { forEachLimited, sleep, within } from './waits.js';

/**
 * `storeCheckAt`'s default: short runs check everything at the end; long ones read each room back
 * while what they read is still in the owner's recent tail (STORE_TAIL_MESSAGES, default 500), so
 * checking loads the database with no reads.
 */
const STORE_CHECK_AT = 256;
const CONNECT_CONCURRENCY = 64;

/**
 * Runs a probe: connects and joins every client, sends at the given rate, settles, reads the
 * rooms' history, verifies, closes every client. Never throws for what the server does (that is
 * in the report); throws UsageError for bad options.
 */
export async function runProbe(options: RunProbeOptions): Promise<ProbeReport> {
  return (await runProbeRaw(options)).report;
}

export async function runProbeRaw(options: RunProbeOptions): Promise<RawProbeResult> {
  validateProbeOptions(options);
  const monitor = new SelfMonitor();
  const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const signal = options.signal;
  // Every pending wait listens for the abort (up to one per client while connecting).
  if (signal) setMaxListeners(0, signal);
  const runId = options.runId ?? randomBytes(5).toString('hex');
  const roomPrefix = options.roomPrefix ?? `probe-${runId}`;
  const slice = options.slice ?? { index: 0, count: 1 };
  const roomNames = Array.from({ length: options.rooms }, (_, r) => `${roomPrefix}-${r}`).filter(
    (_, r) => r % slice.count === slice.index,
  );
  const specs = Array.from({ length: options.clients }, (_, i) => ({
    user: `probe-${runId}-${i}`,
    room: `${roomPrefix}-${i % options.rooms}`,
    mine: (i % options.rooms) % slice.count === slice.index,
  }))
    .filter((s) => s.mine)
    .map(({ user, room }) => ({ user, room }));
  const ledger = new ProbeLedger(runId, specs);
  /** Per client, when its connection was lost and its room not yet joined again (NaN: it is). */
  const lostAt = new Float64Array(specs.length).fill(Number.NaN);
  const rejoin = new LatencyHistogram();
  const traces = new RejoinTraces();
  const onMark = () => {
    ledger.mark(performance.now());
    log('probe: marked');
  };
  options.marks?.addEventListener('mark', onMark);
  const clients = specs.map((spec, i) => {
    const client = probeClient(options, spec.user, i, ledger, Math.ceil(tokenLifetimeS(options)));
    client.on('reconnecting', ({ attempt, delayMs, code, reason }) => {
      ledger.clientError(i, `connection closed (${code}${reason ? ` ${reason}` : ''})`);
      traces.step(i, performance.now(), `reconnecting #${attempt} in ${delayMs} ms after ${code}`);
    });
    client.on('hello', ({ node }) => traces.step(i, performance.now(), `connected to ${node}`));
    client.on('error', (err) => traces.step(i, performance.now(), `error: ${describe(err)}`));
    return client;
  });
  const rooms: Room[] = [];
  /** Per room, the lowest seq any client held after its first join: this run's messages come after. */
  const baseline = new Map<string, number>();
  let phase = 'connecting';
  let sendStart = performance.now();
  let sendEnd = sendStart;
  let settleS = 0;
  let settled = false;
  let aborted: string | undefined;
  let closing = false;
  let nodesAtStart: Record<string, number> = {};
  const storeCheckAt = options.storeCheckAt ?? STORE_CHECK_AT;
  const holdersOf = (room: string): Room[] =>
    rooms.filter((r, i) => r !== undefined && specs[i]!.room === room);
  /** The store check of settled messages running during the run, if any (one room at a time). */
  let storeCheck: Promise<void> | undefined;
  const progressTimer = setInterval(() => {
    // Settled messages shrink to what the store check needs; never once the history read began.
    if (phase === 'sending' || phase === 'settling') {
      ledger.compact();
      if (!storeCheck) {
        const due = roomNames.filter((r) => ledger.uncheckedSettled(r) >= storeCheckAt);
        if (due.length > 0) {
          storeCheck = (async () => {
            // One request at a time, every due room in turn (a room whose check cannot get past a
            // message missing from the store only reads what is new, and holds up no other).
            for (const room of due) {
              if (signal?.aborted) return;
              await checkStoredSegment(ledger, room, holdersOf(room), baseline.get(room) ?? 0, signal).catch(
                (err: unknown) =>
                  log(`probe: store check of ${room} during the run: ${describe(err)}; retried later`),
              );
            }
          })().finally(() => (storeCheck = undefined));
        }
      }
    }
    const p = ledger.progress();
    const t = (performance.now() - sendStart) / 1000;
    const recent = ledger.takeRecentLatency();
    const delay = monitor.takeRecentLoopDelay();
    const rssMb = monitor.rssMb();
    log(
      `probe: ${phase} t=${t.toFixed(1)}s sent=${p.sent} ` +
        `acked=${p.acked} failed=${p.failed} pending=${p.pending} delivered=${p.delivered} reconnects=${p.reconnects}` +
        ` latency=${recent.p50}/${recent.p99}/${recent.max}ms loop=${delay.p99}/${delay.max}ms rss=${rssMb}MB`,
    );
    options.onTick?.({
      t: round1(t),
      phase,
      sent: p.sent,
      acked: p.acked,
      delivered: p.delivered,
      reconnects: p.reconnects,
      latencyMs: recent,
      probeEventLoopDelayMs: delay,
      probeRssMb: rssMb,
    });
  }, options.progressEveryMs ?? 2_000);
  progressTimer.unref();

  try {
    log(
      `probe: run ${runId}: ${options.clients} clients in ${options.rooms} rooms (${roomPrefix}-*) via ${options.urls.join(', ')}`,
    );
    const deadline = performance.now() + options.connectTimeoutS * 1000;
    await forEachLimited(clients.length, CONNECT_CONCURRENCY, async (i) => {
      const client = clients[i]!;
      const spec = specs[i]!;
      if (signal?.aborted) throw new ProbeAbort('interrupted while connecting');
      try {
        await within(client.connect(), deadline, signal);
        const room = await joinRetrying(client, spec.room, deadline, signal);
        // Attached in the join's own continuation, so nothing published after the join is missed.
        room.on('message', (m) => ledger.deliver(i, m, performance.now()));
        client.on('disconnected', ({ code, reason }) => {
          if (Number.isNaN(lostAt[i]!)) lostAt[i] = performance.now();
          traces.lost(i, lostAt[i]!, `disconnected ${code}${reason ? ` ${reason}` : ''}`);
        });
        room.on('error', (err) => traces.step(i, performance.now(), `room error: ${describe(err)}`));
        room.on('joined', () => {
          if (Number.isNaN(lostAt[i]!)) return;
          const now = performance.now();
          rejoin.add(now - lostAt[i]!);
          traces.joined(i, now, spec.user);
          lostAt[i] = Number.NaN;
        });
        rooms[i] = room;
        const held = room.lastSeq ?? 0;
        baseline.set(spec.room, Math.min(baseline.get(spec.room) ?? held, held));
      } catch (err) {
        if (err instanceof ProbeAbort) throw err;
        const last = ledger.clients[i]!.lastError;
        throw new ProbeAbort(
          `client ${spec.user} could not connect and join ${spec.room} via ${client.endpoints.websocket} ` +
            `within ${options.connectTimeoutS} s: ${describe(err)}${last && last !== describe(err) ? ` (last error: ${last})` : ''}`,
        );
      }
    });
    nodesAtStart = countNodes(clients);
    log(`probe: connected ${clients.length} clients (nodes: ${JSON.stringify(nodesAtStart)})`);

    if (options.beforeSending) {
      phase = 'waiting';
      await options.beforeSending();
      if (signal?.aborted) throw new ProbeAbort('interrupted while connecting');
    }
    phase = 'sending';
    sendStart = performance.now();
    ledger.openWindow(sendStart);
    monitor.startWindow();
    log('probe: running');
    const total = Math.floor(options.rate * options.durationS);
    const intervalMs = 1000 / options.rate;
    for (let k = 0; k < total && !signal?.aborted;) {
      const due = Math.min(total, Math.floor((performance.now() - sendStart) / intervalMs) + 1);
      while (k < due) {
        const i = k % clients.length;
        sendOne(ledger, rooms[i]!, i, k++, () => closing);
      }
      if (k < total) await sleep(sendStart + k * intervalMs - performance.now(), signal);
    }
    await sleep(sendStart + options.durationS * 1000 - performance.now(), signal);
    sendEnd = performance.now();
    ledger.closeWindow(sendEnd);
    if (signal?.aborted) throw new ProbeAbort('interrupted while sending');

    phase = 'settling';
    const settleStart = performance.now();
    const settleDeadline = settleStart + options.settleS * 1000;
    while (!ledger.settled() && performance.now() < settleDeadline && !signal?.aborted) {
      await sleep(Math.min(50, settleDeadline - performance.now()), signal);
    }
    settled = ledger.settled();
    settleS = (performance.now() - settleStart) / 1000;
    if (signal?.aborted) throw new ProbeAbort('interrupted while settling');
    monitor.endWindow();
    if (!settled) log(`probe: not settled after ${options.settleS} s; verifying what arrived`);

    phase = 'verifying';
    await storeCheck;
    for (const room of roomNames) {
      const holders = holdersOf(room);
      const after = ledger.storeCursor(room) ?? baseline.get(room) ?? 0;
      const error = await readHistory(holders, after, signal, {
        begin: () => ledger.beginHistory(room, performance.now()),
        page: (messages) => ledger.historyPage(room, messages),
      });
      if (error !== undefined) ledger.historyError(room, error);
    }
  } catch (err) {
    aborted = err instanceof ProbeAbort ? err.message : `probe failed: ${describe(err)}`;
    log(`probe: aborted: ${aborted}`);
    if (phase === 'sending') sendEnd = performance.now();
    ledger.closeWindow(sendEnd);
  } finally {
    clearInterval(progressTimer);
    options.marks?.removeEventListener('mark', onMark);
  }

  const verification = verify(ledger, { from: sendStart, to: sendEnd });
  const nodesAtEnd = countNodes(clients.filter((c) => c.state === 'open'));
  closing = true;
  await closeAll(clients, log);

  const reasons: string[] = [];
  if (aborted) reasons.push(`aborted: ${aborted}`);
  if (verification.lost > 0) reasons.push(`${verification.lost} acked deliveries lost`);
  if (verification.duplicates > 0) reasons.push(`${verification.duplicates} duplicates`);
  if (verification.outOfOrder > 0) reasons.push(`${verification.outOfOrder} deliveries out of order`);
  if (!aborted && verification.unacked > 0) {
    reasons.push(`${verification.unacked} messages still unacked after settling ${options.settleS} s`);
  }
  if (!aborted && verification.acked === 0) reasons.push('nothing was acked');
  if (!aborted && !verification.store.checked) {
    reasons.push(`stored history not verified: ${verification.store.errors.join('; ')}`);
  }
  monitor.stop();
  const probeEventLoopDelayMs = monitor.loopDelay();
  const mark = ledger.markReport(sendStart);
  const report: ProbeReport = {
    ok: reasons.length === 0,
    ...verification,
    clients: options.clients,
    rooms: options.rooms,
    rate: options.rate,
    durationS: options.durationS,
    sendingS: round1((sendEnd - sendStart) / 1000),
    settleS: round1(settleS),
    settled,
    nodes: { start: nodesAtStart, end: nodesAtEnd },
    runId,
    roomPrefix,
    urls: options.urls,
    reasons,
    ...(aborted !== undefined ? { aborted } : {}),
    probeEventLoopDelayMs,
    probeMaxRssMb: monitor.maxRssMb(),
    warnings: selfWarnings(probeEventLoopDelayMs, verification.latencyMs),
    rejoinMs: { ...rejoin.percentiles(), count: rejoin.count },
    slowestRejoins: traces.slowest(),
    slowestDeliveries: ledger.slowest.slowest(),
    ...(mark ? { mark: { atS: round1(mark.atMs / 1000), drainedMs: mark.drainedMs } } : {}),
  };
  return {
    report,
    latency: ledger.latency,
    ackLatency: ledger.ackLatency,
    rejoin,
    gaps: ledger.gaps(sendEnd),
  };
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
