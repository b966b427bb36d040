/**
 * The many-rooms workload: `clients` clients in rooms of `roomSize`, every client a member of its
 * room and a sender in it (chat-like: each sends now and then, all of them in turn), at a total
 * message rate the 2-core machine sustains for every system. Per step: messages sent and acked,
 * deliveries expected (acked × room size: the sender receives its own message too) and received,
 * latency from the sender's clock to each member's, and the server process's CPU (from /proc).
 *
 * The systems run side by side as in the fan-out row: all connected at once, one warm-up step each,
 * then rounds in which every system runs one step, in rotating order.
 */
import { cpuMicros, LoadGen, sleep } from './harness.js';
import { middle, quantile, type Reply, type ServerKind } from './protocol.js';

export interface RoomsStep {
  /** Messages per second asked for, in all. */
  rate: number;
  sent: number;
  acked: number;
  failed: number;
  /** Error replies by reason (sends neither acked nor failed timed out after 15 s). */
  errors: [string, number][];
  /** Acked messages per second over the sending time. */
  ackedPerSec: number;
  /** Deliveries received per second over the sending time. */
  deliveriesPerSec: number;
  expected: number;
  received: number;
  /** Share of expected deliveries that did not arrive (0..1). */
  loss: number;
  p50: number;
  p99: number;
  /** Server CPU per delivery, µs. */
  cpuPerDelivery: number;
  /** Server CPU use over the step (sending and draining), in cores. */
  cores: number;
  ok: boolean;
}

export interface RoomsResult {
  clients: number;
  roomSize: number;
  rate: number;
  stepMs: number;
  /** Load-generator processes (they share the machine with the server). */
  generators: number;
  warmup: RoomsStep | undefined;
  /**
   * Server CPU, in cores, over IDLE_MS after the warm-up while no system sends: the fixed cost of
   * the connected clients (pings, timers).
   */
  idleCores: number;
  /** One step per round, in round order. */
  rounds: RoomsStep[];
  /** The round with the median CPU per delivery, with the median p50 / p99 / acked rate of the rounds. */
  median: RoomsStep | undefined;
}

export interface RoomsOptions {
  kind: ServerKind;
  url: string;
  serverPid: () => number;
  clients: number;
  roomSize: number;
  /** Messages per second in all (every generator sends its share). */
  rate: number;
  stepMs: number;
  rounds: number;
  generators: number;
  secret?: string | undefined;
  log: (line: string) => void;
}

/** How long the idle CPU of the servers is measured, all clients connected and none sending. */
const IDLE_MS = 5_000;

/** One system's room clients, connected and probed, ready to run steps. */
class RoomsSession {
  private stepNo = 0;

  private constructor(
    readonly o: RoomsOptions,
    private readonly gens: LoadGen[],
  ) {}

  static async open(o: RoomsOptions): Promise<RoomsSession> {
    const rooms = Math.floor(o.clients / o.roomSize);
    if (rooms < 1) throw new Error(`rooms: ${o.clients} clients make no room of ${o.roomSize}`);
    const gens = Math.min(o.generators, rooms);
    const session = new RoomsSession(
      o,
      Array.from({ length: gens }, () => LoadGen.start()),
    );
    try {
      const t0 = performance.now();
      // Each generator holds whole rooms: a room's members live in one process.
      const per = Math.ceil(rooms / gens);
      const connected = await Promise.all(
        session.gens.map((g, i) =>
          g.call<Extract<Reply, { ok: 'connect' }>>(
            {
              cmd: 'roomsConnect',
              kind: o.kind,
              url: o.url,
              prefix: 'room',
              firstRoom: i * per,
              rooms: Math.max(0, Math.min(per, rooms - i * per)),
              roomSize: o.roomSize,
              secret: o.secret,
            },
            600_000,
          ),
        ),
      );
      const total = connected.reduce((n, c) => n + c.connected, 0);
      if (total !== rooms * o.roomSize)
        throw new Error(`${o.kind}: only ${total} of ${rooms * o.roomSize} room clients connected`);
      const probed = await Promise.all(
        session.gens.map((g) =>
          g.call<Extract<Reply, { ok: 'roomsProbe' }>>({ cmd: 'roomsProbe', ms: 60_000 }, 90_000),
        ),
      );
      const ready = probed.reduce((n, p) => n + p.ready, 0);
      if (ready !== total)
        throw new Error(`${o.kind}: only ${ready} of ${total} room clients got a probe in 60 s`);
      o.log(
        `  ${o.kind}: ${total.toLocaleString('en-US')} clients in ${rooms.toLocaleString('en-US')} rooms ` +
          `connected and probed in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
      return session;
    } catch (err) {
      await session.close();
      throw err;
    }
  }

  async run(label: string): Promise<RoomsStep> {
    const r = await runStep(this.o, this.gens, ++this.stepNo);
    this.o.log(
      `  ${this.o.kind} ${label}: acked ${r.acked}/${r.sent} (${r.ackedPerSec.toFixed(0)}/s` +
        `${r.failed ? `; ${r.failed} errors: ${JSON.stringify(r.errors)}` : ''}), ` +
        `got ${r.received}/${r.expected} p50 ${r.p50.toFixed(1)} p99 ${r.p99.toFixed(1)} ms, ` +
        `${r.cpuPerDelivery.toFixed(2)} µs/delivery, ${r.cores.toFixed(2)} cores`,
    );
    return r;
  }

  async close(): Promise<void> {
    await Promise.all(this.gens.map((g) => g.stop()));
  }
}

async function runStep(o: RoomsOptions, gens: LoadGen[], step: number): Promise<RoomsStep> {
  const pid = o.serverPid();
  const cpu0 = cpuMicros(pid);
  const t0 = performance.now();
  const sends = await Promise.all(
    gens.map((g) =>
      g.call<Extract<Reply, { ok: 'publish' }>>(
        { cmd: 'roomsSend', step, rate: o.rate / gens.length, ms: o.stepMs },
        o.stepMs + 60_000,
      ),
    ),
  );
  const sent = sends.reduce((n, s) => n + s.sent, 0);
  const acked = sends.reduce((n, s) => n + s.acked, 0);
  const failed = sends.reduce((n, s) => n + s.failed, 0);
  const sendMs = Math.max(...sends.map((s) => s.ms));
  const errors = new Map<string, number>();
  for (const s of sends) for (const [why, n] of s.errors ?? []) errors.set(why, (errors.get(why) ?? 0) + n);
  const expected = acked * o.roomSize;
  // Drain: until everything arrived, or nothing more arrives for 2 s.
  let received = 0;
  let hist = new Map<number, number>();
  let last = -1;
  let stalledSince = performance.now();
  for (;;) {
    const reports = await Promise.all(
      gens.map((g) => g.call<Extract<Reply, { ok: 'report' }>>({ cmd: 'report', step })),
    );
    received = reports.reduce((s, r) => s + r.received, 0);
    const done = received >= expected;
    if (received !== last) {
      last = received;
      stalledSince = performance.now();
    }
    if (done || performance.now() - stalledSince > 2_000) {
      hist = new Map();
      for (const r of reports) for (const [b, n] of r.hist) hist.set(b, (hist.get(b) ?? 0) + n);
      break;
    }
    await sleep(100);
  }
  const cpu = cpuMicros(pid) - cpu0;
  const p99 = quantile(hist, 0.99);
  return {
    rate: o.rate,
    sent,
    acked,
    failed,
    errors: [...errors],
    ackedPerSec: acked / (sendMs / 1000),
    deliveriesPerSec: received / (sendMs / 1000),
    expected,
    received,
    loss: expected > 0 ? Math.max(0, expected - received) / expected : 1,
    p50: quantile(hist, 0.5),
    p99,
    cpuPerDelivery: received > 0 ? cpu / received : NaN,
    cores: cpu / 1000 / (performance.now() - t0),
    ok: failed === 0 && acked === sent && received === expected && p99 < 1_000,
  };
}

function medianStep(runs: RoomsStep[]): RoomsStep | undefined {
  if (runs.length === 0) return undefined;
  const cpu = middle(runs.map((r) => r.cpuPerDelivery));
  const base = runs.find((r) => r.cpuPerDelivery === cpu)!;
  return {
    ...base,
    p50: middle(runs.map((r) => r.p50)),
    p99: middle(runs.map((r) => r.p99)),
    ackedPerSec: middle(runs.map((r) => r.ackedPerSec)),
    deliveriesPerSec: middle(runs.map((r) => r.deliveriesPerSec)),
  };
}

/**
 * The systems side by side: all connected at once (each with its own generator processes), one
 * warm-up step each (not counted), then `rounds` rounds of one step per system, the order rotating.
 */
export async function runRoomsInterleaved(list: RoomsOptions[]): Promise<RoomsResult[]> {
  const sessions: RoomsSession[] = [];
  try {
    for (const o of list) sessions.push(await RoomsSession.open(o));
    const warmups: RoomsStep[] = [];
    for (const s of sessions) {
      warmups.push(await s.run('warm-up'));
      await sleep(300);
    }
    // Every system idle at once, warmed up: what the connected clients cost with nothing sent.
    const idle0 = list.map((o) => cpuMicros(o.serverPid()));
    const idleStart = performance.now();
    await sleep(IDLE_MS);
    const idleCores = list.map(
      (o, i) => (cpuMicros(o.serverPid()) - idle0[i]!) / 1000 / (performance.now() - idleStart),
    );
    list.forEach((o, i) => o.log(`  ${o.kind} idle: ${idleCores[i]!.toFixed(3)} cores`));
    const rounds: RoomsStep[][] = list.map(() => []);
    const count = Math.max(...list.map((o) => o.rounds));
    for (let k = 0; k < count; k++) {
      for (let j = 0; j < sessions.length; j++) {
        const i = (j + k) % sessions.length;
        rounds[i]!.push(await sessions[i]!.run(`round ${k + 1}`));
        await sleep(300);
      }
    }
    return list.map((o, i) => ({
      clients: Math.floor(o.clients / o.roomSize) * o.roomSize,
      roomSize: o.roomSize,
      rate: o.rate,
      stepMs: o.stepMs,
      generators: o.generators,
      warmup: warmups[i],
      idleCores: idleCores[i]!,
      rounds: rounds[i]!,
      median: medianStep(rounds[i]!),
    }));
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
  }
}
