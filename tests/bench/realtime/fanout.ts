/**
 * The fan-out measurement: subscribers in one room spread over the given servers, one publisher on
 * the first, rising publish rates. Per step: deliveries expected and received, latency from the
 * publisher's clock to the subscriber's, and the CPU the server processes spent (from /proc).
 */
import { cpuMicros, LoadGen, sleep, totalCpuMicros } from './harness.js';
import { middle, quantile, type Reply, type ServerKind } from './protocol.js';

export interface StepResult {
  /** Target deliveries per second (publish rate × subscribers). */
  target: number;
  /** Deliveries per second actually received over the step (publish time). */
  achieved: number;
  expected: number;
  received: number;
  p50: number;
  p99: number;
  /** Server CPU (all server processes) per delivery, µs. */
  cpuPerDelivery: number;
  /** Server CPU use over the step, in cores. */
  cores: number;
  ok: boolean;
}

export interface FanoutResult {
  steps: StepResult[];
  /** The highest step with no loss and p99 under a second (deliveries/s), 0 if none. */
  maxNoLoss: number;
  /** At the fixed rate (40k deliveries/s): the median of its runs, if it ran. */
  fixed: StepResult | undefined;
  fixedRuns: StepResult[];
}

export interface FanoutOptions {
  kind: ServerKind;
  /** Where subscribers connect (round-robin) and, first of them, where the publisher does. */
  urls: string[];
  pubUrl: string;
  /** Processes whose CPU counts as the server's. */
  serverPids: () => number[];
  subscribers: number;
  /** Target deliveries/s per step, ascending. */
  rates: number[];
  fixedRate: number;
  stepMs: number;
  generators: number;
  /** Extra runs of the fixed-rate step (the median of all is reported). */
  repeatFixed: number;
  log: (line: string) => void;
  /** Centrifugo: the HMAC secret of its connection tokens. */
  secret?: string | undefined;
}

const ROOM = 'bench';

/** One system's subscribers and publisher, connected and subscribed, ready to run rate steps. */
export class FanoutSession {
  private stepNo = 1;

  private constructor(
    readonly o: FanoutOptions,
    private readonly gens: LoadGen[],
    private readonly pub: LoadGen,
  ) {}

  static async open(o: FanoutOptions): Promise<FanoutSession> {
    const session = new FanoutSession(
      o,
      Array.from({ length: o.generators }, () => LoadGen.start()),
      LoadGen.start(),
    );
    try {
      const per = Math.ceil(o.subscribers / session.gens.length);
      const connected = await Promise.all(
        session.gens.map((g, i) =>
          g.call<Extract<Reply, { ok: 'connect' }>>({
            cmd: 'connect',
            kind: o.kind,
            // Each generator starts at a different server so subscribers spread evenly.
            urls: o.urls.map((_, j) => o.urls[(j + i * per) % o.urls.length]!),
            count: Math.min(per, o.subscribers - i * per),
            room: ROOM,
            ping: true,
            secret: o.secret,
          }),
        ),
      );
      const total = connected.reduce((sum, c) => sum + c.connected, 0);
      if (total !== o.subscribers)
        throw new Error(`${o.kind}: only ${total} of ${o.subscribers} subscribers connected`);
      await waitSubscribed(o, session.gens, session.pub);
      return session;
    } catch (err) {
      await session.close();
      throw err;
    }
  }

  /** One step at `target` deliveries/s, logged. */
  async run(target: number): Promise<StepResult> {
    const r = await runStep(this.o, this.gens, this.pub, ++this.stepNo, target);
    this.o.log(
      `  ${this.o.kind} ${target.toLocaleString('en-US')}/s: got ${r.received}/${r.expected} ` +
        `p50 ${r.p50.toFixed(1)} p99 ${r.p99.toFixed(1)} ms, ${r.cpuPerDelivery.toFixed(2)} µs/delivery, ${r.cores.toFixed(2)} cores`,
    );
    return r;
  }

  async close(): Promise<void> {
    await Promise.all([...this.gens, this.pub].map((g) => g.stop()));
  }
}

/**
 * Several systems measured side by side: all connected at once (each with its own generator
 * processes), then every rate step run for each system in turn, and the fixed-rate step repeated
 * in rounds whose order rotates. Round k of every system ran within seconds of the others, on the
 * same machine state, so per-round ratios compare even when the machine's speed drifts between
 * rounds (it does here: a shared VM). A system that fails a step at or above the fixed rate
 * runs no higher steps.
 */
export async function runFanoutInterleaved(list: FanoutOptions[]): Promise<FanoutResult[]> {
  const sessions: FanoutSession[] = [];
  try {
    for (const o of list) sessions.push(await FanoutSession.open(o));
    const steps: StepResult[][] = list.map(() => []);
    const live = list.map(() => true);
    for (const target of list[0]!.rates) {
      for (const [i, session] of sessions.entries()) {
        if (!live[i] || !session.o.rates.includes(target)) continue;
        const r = await session.run(target);
        steps[i]!.push(r);
        if (!r.ok && target >= session.o.fixedRate) live[i] = false;
        await sleep(300);
      }
    }
    const fixedRuns = sessions.map((s, i) => steps[i]!.filter((x) => x.target === s.o.fixedRate));
    const rounds = Math.max(...list.map((o) => o.repeatFixed));
    for (let k = 0; k < rounds; k++) {
      for (let j = 0; j < sessions.length; j++) {
        const i = (j + k + 1) % sessions.length;
        const session = sessions[i]!;
        if (fixedRuns[i]!.length === 0 || k >= session.o.repeatFixed) continue;
        fixedRuns[i]!.push(await session.run(session.o.fixedRate));
        await sleep(300);
      }
    }
    return sessions.map((s, i) => {
      let maxNoLoss = 0;
      for (const x of steps[i]!) {
        if (!x.ok) break;
        maxNoLoss = x.achieved;
      }
      return { steps: steps[i]!, maxNoLoss, fixed: median(fixedRuns[i]!), fixedRuns: fixedRuns[i]! };
    });
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
  }
}

/** Publishes probes until every subscriber has received one: registration is asynchronous. */
async function waitSubscribed(o: FanoutOptions, gens: LoadGen[], pub: LoadGen): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    await pub.call({
      cmd: 'publish',
      kind: o.kind,
      url: o.pubUrl,
      room: ROOM,
      step: 0,
      rate: 10,
      ms: 100,
      secret: o.secret,
    });
    await sleep(300);
    const counts = await Promise.all(
      gens.map((g) => g.call<Extract<Reply, { ok: 'probed' }>>({ cmd: 'probed', id: 1 })),
    );
    if (counts.reduce((s, c) => s + c.count, 0) >= o.subscribers) return;
  }
  throw new Error(`${o.kind}: subscribers did not all receive a probe within 60 s`);
}

async function runStep(
  o: FanoutOptions,
  gens: LoadGen[],
  pub: LoadGen,
  step: number,
  target: number,
): Promise<StepResult> {
  const rate = target / o.subscribers;
  const pids = o.serverPids();
  const each0 = pids.map((p) => cpuMicros(p));
  const cpu0 = totalCpuMicros(pids);
  const t0 = performance.now();
  const sent = await pub.call<Extract<Reply, { ok: 'publish' }>>(
    { cmd: 'publish', kind: o.kind, url: o.pubUrl, room: ROOM, step, rate, ms: o.stepMs, secret: o.secret },
    o.stepMs + 60_000,
  );
  const expected = sent.acked * o.subscribers;
  // Drain: wait until everything arrived, or nothing more arrives for 2 s.
  let received = 0;
  let hist = new Map<number, number>();
  let last = -1;
  let stalledSince = performance.now();
  for (;;) {
    const reports = await Promise.all(
      gens.map((g) => g.call<Extract<Reply, { ok: 'report' }>>({ cmd: 'report', step })),
    );
    received = reports.reduce((s, r) => s + r.received, 0);
    if (received >= expected) {
      hist = merge(reports);
      break;
    }
    if (received !== last) {
      last = received;
      stalledSince = performance.now();
    } else if (performance.now() - stalledSince > 2_000) {
      hist = merge(reports);
      break;
    }
    await sleep(100);
  }
  const cpu = totalCpuMicros(pids) - cpu0;
  if (process.env.BENCH_CPU_BREAKDOWN === '1') {
    const shares = pids.map(
      (p, i) => `${p}: ${((cpuMicros(p) - each0[i]!) / Math.max(1, received)).toFixed(2)}`,
    );
    o.log(`    µs/delivery by process: ${shares.join(', ')}`);
  }
  const elapsedMs = performance.now() - t0;
  const p99 = quantile(hist, 0.99);
  return {
    target,
    achieved: Math.round(received / (sent.ms / 1000)),
    expected,
    received,
    p50: quantile(hist, 0.5),
    p99,
    cpuPerDelivery: received > 0 ? cpu / received : NaN,
    cores: cpu / 1000 / elapsedMs,
    ok: sent.failed === 0 && sent.acked === sent.sent && received === expected && p99 < 1_000,
  };
}

/** The run with the median CPU per delivery, its p99 replaced by the median p99 of the runs. */
function median(runs: StepResult[]): StepResult | undefined {
  if (runs.length === 0) return undefined;
  const cpu = middle(runs.map((r) => r.cpuPerDelivery));
  const base = runs.find((r) => r.cpuPerDelivery === cpu)!;
  return { ...base, p99: middle(runs.map((r) => r.p99)), p50: middle(runs.map((r) => r.p50)) };
}

function merge(reports: Extract<Reply, { ok: 'report' }>[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const r of reports) for (const [b, n] of r.hist) m.set(b, (m.get(b) ?? 0) + n);
  return m;
}
