/// <reference types="node" />
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import { WebSocket } from 'ws';
import { ChatClient, type ChatClientOptions, type WebSocketCtor } from '../client.js';
import { ChatError } from '../errors.js';
import type { Room } from '../room.js';
import { LatencyHistogram } from './histogram.js';
import { ProbeLedger, type StoredMessage } from './ledger.js';
import { type ProbeOptions, validateProbeOptions } from './options.js';
import { signProbeToken } from './token.js';
import { type LoopDelay, SelfMonitor, selfWarnings } from './self-monitor.js';
import type { Percentiles } from './stats.js';
import { type Verification, verify } from './verify.js';

export interface RunProbeOptions extends ProbeOptions {
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
  /** Aborting stops sending and settling; the report is still made (aborted, not ok). */
  signal?: AbortSignal;
  /** How often a progress line is logged. Default 2 000 ms. */
  progressEveryMs?: number;
  /** Passed to every ChatClient (e.g. faster heartbeats); default: the library's defaults. */
  clientOptions?: Partial<Omit<ChatClientOptions, 'url' | 'user' | 'token'>>;
  /** Called with every progress line's figures, including the interval's latency and loop delay. */
  onTick?: (tick: ProbeTick) => void;
  /** Run id (default: random); workers of one run share it. */
  runId?: string;
  /**
   * Only rooms r with r % count === index, and their clients (`--workers`: one slice per worker;
   * `rate` is then the slice's share). Default: everything.
   */
  slice?: { index: number; count: number };
  /** Awaited once every client joined, before sending (workers start sending together). */
  beforeSending?: () => Promise<void>;
  /**
   * A `mark` event dispatched here marks that moment (the CLI: SIGUSR2); the report's `mark` then
   * says how long the messages sent before it took to be acked and delivered to every member.
   */
  marks?: EventTarget;
  /**
   * A room's settled messages are checked against its stored history during the run once this
   * many wait, then forgotten (memory stays flat on long runs). Default 256; tests lower it.
   */
  storeCheckAt?: number;
}

/** One progress interval, for timelines (the soak's latency-over-time plot). */
export interface ProbeTick {
  /** Seconds since sending began (negative while connecting). */
  t: number;
  phase: string;
  sent: number;
  acked: number;
  delivered: number;
  reconnects: number;
  /** Deliveries' latency within this interval. */
  latencyMs: Percentiles;
  probeEventLoopDelayMs: LoopDelay;
  probeRssMb: number;
}

export interface ProbeReport extends Verification {
  /** lost = duplicates = outOfOrder = 0, nothing left unacked, the store checked, not aborted. */
  ok: boolean;
  /** Why not ok, one line each (empty when ok). */
  reasons: string[];
  aborted?: string;
  clients: number;
  rooms: number;
  rate: number;
  /** Seconds of sending asked for, and as measured. */
  durationS: number;
  sendingS: number;
  /** Seconds spent settling, and whether everything settled before `--settle` ran out. */
  settleS: number;
  settled: boolean;
  /** Clients per node (from the servers' hellos) after connecting and at the end. */
  nodes: { start: Record<string, number>; end: Record<string, number> };
  runId: string;
  roomPrefix: string;
  urls: string[];
  /** The probe's own event loop: how late it ran (p99, max over the run, sampling period subtracted). */
  probeEventLoopDelayMs: LoopDelay;
  /** The probe process's peak resident memory. */
  probeMaxRssMb: number;
  /** Doubts about the measurement itself (the probe's own stalls); they do not change `ok`. */
  warnings: string[];
  /**
   * How long clients were away, per reconnection: from the connection's loss to the room joined
   * again (percentiles in ms; `count` reconnections that ended in a rejoin).
   */
  rejoinMs: Percentiles & { count: number };
  /**
   * The latest mark (`marks`, SIGUSR2): seconds after sending began, and ms from it until the
   * last message sent before it was acked and delivered to every member (meaningful when `ok`).
   */
  mark?: { atS: number; drainedMs: number };
}

/** A report and what merging several (workers) needs beyond it. */
export interface RawProbeResult {
  report: ProbeReport;
  latency: LatencyHistogram;
  ackLatency: LatencyHistogram;
  /** Connection lost → room joined again, per reconnection. */
  rejoin: LatencyHistogram;
  /** Per client, the longest delivery gap (ms). */
  gaps: number[];
}

const HISTORY_PAGE = 500;
const HISTORY_TIMEOUT_MS = 30_000;
/**
 * `storeCheckAt`'s default: short runs check everything at the end; long ones read each room back
 * while what they read is still in the owner's recent tail (STORE_TAIL_MESSAGES, default 500), so
 * checking loads the database with no reads.
 */
const STORE_CHECK_AT = 256;
const CONNECT_CONCURRENCY = 64;
const CLOSE_TIMEOUT_MS = 10_000;

export class ProbeAbort extends Error {}

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
  const onMark = () => {
    ledger.mark(performance.now());
    log('probe: marked');
  };
  options.marks?.addEventListener('mark', onMark);
  const clients = specs.map((spec, i) => {
    const client = probeClient(options, spec.user, i, ledger, Math.ceil(tokenLifetimeS(options)));
    client.on('reconnecting', ({ code, reason }) =>
      ledger.clientError(i, `connection closed (${code}${reason ? ` ${reason}` : ''})`),
    );
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
        client.on('disconnected', () => {
          if (Number.isNaN(lostAt[i]!)) lostAt[i] = performance.now();
        });
        room.on('joined', () => {
          if (Number.isNaN(lostAt[i]!)) return;
          rejoin.add(performance.now() - lostAt[i]!);
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
  await within(
    Promise.allSettled(clients.map((c) => c.close())),
    performance.now() + CLOSE_TIMEOUT_MS,
    undefined,
  ).catch(() => log('probe: some clients did not close in time'));

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

/** Sends message `key` from client `i` without waiting: the schedule never blocks on acks. */
export function sendOne(
  ledger: ProbeLedger,
  room: Room,
  i: number,
  key: number,
  closing: () => boolean,
): void {
  const text = ledger.textFor(key);
  const at = performance.now();
  const promise = room.send(text);
  // The entry is queued synchronously: its clientMsgId is the one every attempt will carry.
  const entry = room.pending.at(-1);
  ledger.send(i, key, entry?.text === text ? entry.clientMsgId : `unqueued-${key}`, at);
  promise.then(
    (ack) => ledger.ack(key, ack.seq, performance.now()),
    (err: unknown) => {
      if (!closing()) ledger.fail(key, describe(err), performance.now());
    },
  );
}

/**
 * Pages the stored history after `afterSeq` through any joined client of the room, retrying a page
 * that failed (bounded in time) through the next client; each page goes to `page` as it arrives
 * (nothing is kept). Returns an error, or undefined once the whole history was read.
 */
export async function readHistory(
  holders: Room[],
  afterSeq: number,
  signal: AbortSignal | undefined,
  sink: { begin: () => void; page: (messages: StoredMessage[]) => void },
): Promise<string | undefined> {
  const deadline = performance.now() + HISTORY_TIMEOUT_MS;
  let lastError = 'no client of the room is joined';
  sink.begin();
  let cursor = afterSeq;
  for (let attempt = 0; performance.now() < deadline && !signal?.aborted; attempt++) {
    const room = holders[attempt % Math.max(1, holders.length)];
    if (room && room.state === 'joined') {
      try {
        for (;;) {
          const page = await room.fetchHistory({ afterSeq: cursor, limit: HISTORY_PAGE });
          sink.page(page.map(storedOf));
          const last = page.at(-1)?.seq;
          if (page.length < HISTORY_PAGE || last === undefined || last <= cursor) break;
          cursor = last;
        }
        return undefined;
      } catch (err) {
        lastError = describe(err);
      }
    }
    await sleep(250, signal);
  }
  return `could not read the history within ${HISTORY_TIMEOUT_MS / 1000} s: ${lastError}`;
}

/**
 * Checks a room's settled messages against its stored history during the run (see
 * `ProbeLedger.beginStoredSegment`): pages after the room's store cursor up to the segment's end
 * through a joined client. Throws on a failed page; what was checked stays checked, and the next
 * attempt goes on from the cursor.
 */
async function checkStoredSegment(
  ledger: ProbeLedger,
  roomName: string,
  holders: Room[],
  baseline: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const seg = ledger.beginStoredSegment(roomName);
  if (!seg) return;
  const room = holders.find((r) => r.state === 'joined');
  if (!room) throw new Error('no client of the room is joined');
  for (let cursor = ledger.storeCursor(roomName) ?? baseline; cursor < seg.upTo && !signal?.aborted;) {
    const page = await room.fetchHistory({ afterSeq: cursor, limit: HISTORY_PAGE });
    const next = ledger.checkStoredSegment(seg, page.map(storedOf), page.length >= HISTORY_PAGE);
    if (next <= cursor) break;
    cursor = next;
  }
}

function storedOf(m: { seq: number; clientMsgId: string; text?: string | undefined }): StoredMessage {
  return { seq: m.seq, clientMsgId: m.clientMsgId, text: m.text };
}

function tokenLifetimeS(o: ProbeOptions): number {
  // Long enough for every phase: a token is signed for each connection attempt anyway.
  return o.connectTimeoutS + o.durationS + o.settleS + 600;
}

function countNodes(clients: ChatClient[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const c of clients) {
    const node = c.node ?? 'unknown';
    counts[node] = (counts[node] ?? 0) + 1;
  }
  return counts;
}

export async function forEachLimited(
  n: number,
  limit: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async (): Promise<void> => {
    while (next < n && failure === undefined) {
      const i = next++;
      try {
        await task(i);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, limit) }, worker));
  if (failure !== undefined) throw failure;
}

/** `promise`, or a rejection once `deadline` (performance.now() ms) passes or `signal` aborts. */
/**
 * A first join, retried while the server says it may succeed later (a 503 from a store shedding
 * load, a timeout) and the connect deadline allows, with a jittered pause as messages-lib's own
 * retries: a busy server is not a broken one.
 */
async function joinRetrying(
  client: ChatClient,
  room: string,
  deadline: number,
  signal: AbortSignal | undefined,
): Promise<Room> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await within(client.join(room), deadline, signal);
    } catch (err) {
      const pause = Math.random() * Math.min(4_000, 250 * 2 ** attempt);
      if (!(err instanceof ChatError) || !err.retryable || performance.now() + pause >= deadline) throw err;
      await sleep(pause, signal);
    }
  }
}

export function within<T>(
  promise: Promise<T>,
  deadline: number,
  signal: AbortSignal | undefined,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new ChatError('TIMEOUT', 'timed out')),
      Math.max(0, deadline - performance.now()),
    );
    const onAbort = () => reject(new ProbeAbort('interrupted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    });
  });
}

export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}

export function describe(err: unknown): string {
  if (err instanceof ChatError)
    return `${err.failureType}${err.code !== -1 ? ` ${err.code}` : ''}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

/**
 * One probe client: spread over the given URLs from its own starting point, holding one message
 * (the probe checks deliveries itself: 500 clients holding their room's last 1,000 messages were
 * 200 MB and a 1,000-element shift per delivery), its hellos and errors reported to the ledger.
 */
export function probeClient(
  options: RunProbeOptions,
  user: string,
  i: number,
  ledger: ProbeLedger,
  tokenSeconds: number,
): ChatClient {
  const urls = options.urls.map((_, j) => options.urls[(i + j) % options.urls.length]!);
  const secret = options.tokenSecret;
  const client = new ChatClient({
    WebSocket: WebSocket as unknown as WebSocketCtor,
    maxMessages: 1,
    ...options.clientOptions,
    url: urls,
    user,
    ...(secret !== undefined ? { token: () => signProbeToken(secret, user, tokenSeconds) } : {}),
  });
  client.on('hello', ({ node }) => ledger.hello(i, node, performance.now()));
  client.on('error', (e) => ledger.clientError(i, describe(e)));
  return client;
}
