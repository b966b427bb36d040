/**
 * Cluster soak (issue 26): cluster mode under sustained load, as an operator would run it.
 *
 *   npm run bench:cluster-soak -- [--minutes 15] [--rate 500] [--probes 10] [--clients 50] [--out file.json]
 *     [--node-env KEY=VALUE ...]   (settings for the backend nodes, e.g. MONGO_INSERTS_IN_FLIGHT=1)
 *
 * 3 backend nodes (the product's main.ts, STORE=mongodb) on 2 Hazelcast members and FerretDB,
 * HAProxy in front, all provisioned by tests/infra (tests/fault/fault-stack.ts). The load is split
 * over `--probes` switchboard-probe processes of `--clients` clients each (5 rooms per probe, so
 * 50 rooms by default), started 5 s apart, sending `--rate` msg/s in all, plus join/leave churn:
 * every 15 s a short probe of 20 clients joins, sends a few messages and leaves.
 *
 * Reports: lost / duplicates (every probe, churn included), delivery latency p50/p99/max per probe
 * and overall (worst p99 and max), acked msgs/s per minute (the nodes' counters), messages stored
 * at the end, CPU seconds per process. Goal: lost = dup = 0, p99 <= 50 ms, max <= 1 s, the acked
 * rate flat from the first minute to the last, >= 400k stored messages after 15 minutes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { MongoClient } from 'mongodb';
import { FaultStack } from '../fault/fault-stack.js';
import { metricTotal } from '../helpers/metrics-page.js';
import { type ProbeRun, type ProbeVerdict, startProbe } from '../fault/probe-process.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '15' },
    rate: { type: 'string', default: '500' },
    probes: { type: 'string', default: '10' },
    clients: { type: 'string', default: '50' },
    out: { type: 'string' },
    'node-env': { type: 'string', multiple: true },
  },
});
const MINUTES = Number(values.minutes);
const RATE = Number(values.rate);
const PROBES = Number(values.probes);
const CLIENTS = Number(values.clients);
const ROOMS_PER_PROBE = 5;
const STAGGER_S = 5;
const CHURN_EVERY_S = 15;
const SAMPLE_MS = 5_000;
if (![MINUTES, RATE, PROBES, CLIENTS].every((n) => Number.isFinite(n) && n > 0)) {
  console.error('usage: cluster-soak.bench.ts [--minutes 15] [--rate 500] [--probes 10] [--clients 50]');
  process.exit(2);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TICK_S = 100; // USER_HZ on Linux

/** utime + stime of a process in seconds, or undefined once it is gone. */
function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICK_S;
  } catch {
    return undefined;
  }
}

/** CPU time stolen by the hypervisor since boot, all CPUs, seconds (/proc/stat, USER_HZ 100). */
function stealSeconds(): number {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
    return Number(cpu[8] ?? 0) / 100;
  } catch {
    return 0; // not Linux: no steal figure
  }
}

async function main(): Promise<void> {
  const t0 = Date.now();
  console.error(`soak: starting the stack (3 nodes, 2 Hazelcast members, FerretDB, HAProxy)`);
  // Tails that hold a whole soak room (at 500 msg/s over 50 rooms, 9,000 messages in 15 minutes):
  // the probes' store checks at the end then read from the owners' memory, not by ~900 collection
  // scans on FerretDB 1.24. The database is checked separately below, by one read of the collection.
  const env: Record<string, string> = { STORE_TAIL_MESSAGES: '10000', STORE_TAIL_MB: '1024' };
  for (const kv of values['node-env'] ?? []) {
    const at = kv.indexOf('=');
    if (at < 1) throw new Error(`--node-env ${kv}: expected KEY=VALUE`);
    env[kv.slice(0, at)] = kv.slice(at + 1);
  }
  const stack = await FaultStack.start({ slots: 3, running: 3, env });
  const cpu = new Map<string, { pid: number; last: number; first: number }>();
  const watchCpu = (name: string, pid: number): void => {
    const now = cpuSeconds(pid);
    if (now !== undefined && pid > 0) cpu.set(name, { pid, first: now, last: now });
  };
  const sampleCpu = (): void => {
    for (const entry of cpu.values()) entry.last = cpuSeconds(entry.pid) ?? entry.last;
  };
  stack.slots.forEach((s) => watchCpu(`backend-${s.index}`, s.proc!.pid));
  stack.hz.members.forEach((m, i) => watchCpu(`hazelcast-${i}`, m.proc.pid));
  watchCpu('ferretdb', stack.db.proc.pid);

  // What reached the database, per operation (past the nodes' recent tails and load shedding):
  // calls and seconds spent, summed over the nodes.
  const DB_OPS = ['append', 'latest', 'history', 'lastSeq'] as const;
  type DbOps = Record<(typeof DB_OPS)[number], { calls: number; seconds: number }>;
  const dbOps = (pages: string[]): DbOps =>
    Object.fromEntries(
      DB_OPS.map((op) => [
        op,
        {
          calls: metricTotal(pages, 'switchboard_store_database_duration_seconds_count', { op }),
          seconds: metricTotal(pages, 'switchboard_store_database_duration_seconds_sum', { op }),
        },
      ]),
    ) as DbOps;
  const samples: Array<{
    at: number;
    stored: number;
    tailMessages: number;
    degraded: number;
    shed: number;
    db: DbOps;
    tailLoads: number;
    tailDrops: Record<string, number>;
    /** Event-bus requests settled, by outcome (ok, TIMEOUT, NO_HANDLERS, RECIPIENT_FAILURE, …). */
    busRequests: Record<string, number>;
    /** Appends that failed at the node's store (load shedding, the database, …). */
    appendErrors: number;
    /** Cumulative histogram counts: database appends and bus requests over 50 / 250 / 1000 ms. */
    slow: Record<string, number>;
    /** Reads at the nodes' stores (recent tails included): history pages are clients' gap fills. */
    storeReads: { history: number; latest: number };
    /** The machine's CPU time taken by the hypervisor (steal) since boot, seconds. */
    steal: number;
    /** The main probes' progress lines since the previous sample: worst 2-s p99 and max, ms. */
    latency: { p99: number; max: number; windows: number; over50: number };
  }> = [];
  // Each main probe logs a progress line every 2 s with that interval's latency p50/p99/max.
  const PROGRESS = /probe: sending t=[\d.]+s .* latency=(\d+)\/(\d+)\/(\d+)ms/g;
  const probesSeen = new Map<ProbeRun, number>();
  const latencySince = (): { p99: number; max: number; windows: number; over50: number } => {
    const out = { p99: 0, max: 0, windows: 0, over50: 0 };
    for (const probe of probes) {
      const text = probe.proc.output();
      const total = probe.proc.mark();
      const fresh = text.slice(Math.max(0, text.length - (total - (probesSeen.get(probe) ?? 0))));
      probesSeen.set(probe, total);
      for (const m of fresh.matchAll(PROGRESS)) {
        const p99 = Number(m[2]);
        out.p99 = Math.max(out.p99, p99);
        out.max = Math.max(out.max, Number(m[3]));
        out.windows++;
        if (p99 > 50) out.over50++;
      }
    }
    return out;
  };
  const probes: ProbeRun[] = [];
  const TAIL_DROP_REASONS = ['moved', 'not_owner', 'other_writer', 'evicted', 'forgotten'];
  // Histogram bucket bounds (seconds) of the nodes' latency histograms, as the slow thresholds.
  const SLOW_LE = ['0.05', '0.25', '1'];
  const slowCounts = (pages: string[]): Record<string, number> => {
    const out: Record<string, number> = {};
    const db = 'switchboard_store_database_duration_seconds';
    const bus = 'switchboard_bus_request_duration_seconds';
    out.appends = metricTotal(pages, `${db}_count`, { op: 'append' });
    out.busRequests = metricTotal(pages, `${bus}_count`);
    for (const le of SLOW_LE) {
      out[`appendsOver${le}s`] = out.appends - metricTotal(pages, `${db}_bucket`, { op: 'append', le });
      out[`busRequestsOver${le}s`] = out.busRequests - metricTotal(pages, `${bus}_bucket`, { le });
    }
    return out;
  };
  const BUS_OUTCOMES = ['ok', 'TIMEOUT', 'NO_HANDLERS', 'RECIPIENT_FAILURE', 'ERROR'];
  let running = true;
  const sampler = (async () => {
    while (running) {
      const pages = await Promise.all(
        stack.running().map((slot) =>
          fetch(`http://127.0.0.1:${slot.adminPort}/metrics`, { signal: AbortSignal.timeout(3000) })
            .then((r) => r.text())
            .catch(() => ''),
        ),
      );
      samples.push({
        at: Date.now(),
        stored: metricTotal(pages, 'switchboard_chat_messages_in_total', { result: 'stored' }),
        tailMessages: metricTotal(pages, 'switchboard_store_tail_messages'),
        degraded: metricTotal(pages, 'switchboard_store_degraded'),
        shed: metricTotal(pages, 'switchboard_store_shed'),
        db: dbOps(pages),
        tailLoads: metricTotal(pages, 'switchboard_store_tail_loads_total'),
        tailDrops: Object.fromEntries(
          TAIL_DROP_REASONS.map((reason) => [
            reason,
            metricTotal(pages, 'switchboard_store_tail_drops_total', { reason }),
          ]),
        ),
        steal: stealSeconds(),
        latency: latencySince(),
        busRequests: Object.fromEntries(
          BUS_OUTCOMES.map((outcome) => [
            outcome,
            metricTotal(pages, 'switchboard_bus_request_duration_seconds_count', { outcome }),
          ]),
        ),
        slow: slowCounts(pages),
        storeReads: {
          history: metricTotal(pages, 'switchboard_store_operation_duration_seconds_count', {
            op: 'history',
          }),
          latest: metricTotal(pages, 'switchboard_store_operation_duration_seconds_count', { op: 'latest' }),
        },
        appendErrors: metricTotal(pages, 'switchboard_store_operation_duration_seconds_count', {
          op: 'append',
          outcome: 'error',
        }),
      });
      sampleCpu();
      await sleep(SAMPLE_MS);
    }
  })();

  const durationS = MINUTES * 60;
  const loadStart = Date.now();
  const sendEnd = loadStart + durationS * 1000;
  for (let i = 0; i < PROBES; i++) {
    // Every probe stops sending at the same moment: the history reads of their store checks (a
    // collection scan each on FerretDB 1.24) then start when nobody sends any more.
    const probe = startProbe(stack.lb.url, {
      clients: CLIENTS,
      rooms: ROOMS_PER_PROBE,
      rate: RATE / PROBES,
      durationS: Math.max(60, Math.round((sendEnd - Date.now()) / 1000)),
      settleS: 120,
      roomPrefix: `soak-p${i}`,
      // Joins of new rooms read the database (the owner's tail load); while it is slow they are
      // refused as busy and retried: give them time rather than abort the probe.
      connectTimeoutS: 120,
    });
    probes.push(probe);
    watchCpu(`probe-${i}`, probe.proc.pid);
    await probe
      .running()
      .catch((err: unknown) => console.error(`soak: probe ${i} did not start: ${String(err)}`));
    console.error(`soak: probe ${i + 1}/${PROBES} running (${Math.round((Date.now() - t0) / 1000)} s)`);
    if (i < PROBES - 1) await sleep(STAGGER_S * 1000);
  }

  // Join/leave churn until the main probes stop sending.
  const churn: ProbeVerdict[] = [];
  const churnFailures: string[] = [];
  let churnCpu = 0;
  const churnEnd = loadStart + durationS * 1000;
  const churner = (async () => {
    for (let k = 0; Date.now() + 30_000 < churnEnd; k++) {
      const probe = startProbe(stack.lb.url, {
        clients: 20,
        rooms: 2,
        rate: 4,
        durationS: 5,
        settleS: 20,
        roomPrefix: `soak-churn-${k % 5}`,
        connectTimeoutS: 60,
      });
      let last = 0;
      const tick = setInterval(() => (last = cpuSeconds(probe.proc.pid) ?? last), 1000);
      try {
        churn.push((await probe.result()).verdict);
      } catch (err) {
        churnFailures.push(String(err).slice(0, 300));
      } finally {
        clearInterval(tick);
        churnCpu += last;
      }
      await sleep(CHURN_EVERY_S * 1000);
    }
  })();

  const verdicts: ProbeVerdict[] = [];
  const probeFailures: string[] = [];
  for (const p of probes) {
    try {
      verdicts.push((await p.result()).verdict);
    } catch (err) {
      probeFailures.push(String(err).slice(0, 500));
    }
  }
  await churner;
  running = false;
  await sampler;
  sampleCpu();

  // The database itself, read once: per room, messages stored and the highest seq (dense means
  // equal), and the total against what the probes had acked.
  const admin = new MongoClient(stack.db.url, { serverSelectionTimeoutMS: 5000, socketTimeoutMS: 600_000 });
  let storedDocs = 0;
  const roomsSeen = new Map<string, { n: number; max: number }>();
  const checkStart = Date.now();
  try {
    const cursor = admin
      .db(stack.dbName)
      .collection('messages')
      .find({}, { projection: { _id: 0, room: 1, seq: 1 }, batchSize: 20_000 });
    for await (const doc of cursor) {
      storedDocs++;
      const r = roomsSeen.get(doc.room as string) ?? { n: 0, max: 0 };
      r.n++;
      r.max = Math.max(r.max, doc.seq as number);
      roomsSeen.set(doc.room as string, r);
    }
  } catch (err) {
    console.error(`soak: reading the collection failed: ${String(err)}`);
  } finally {
    await admin.close();
  }
  const roomsWithHoles = [...roomsSeen].filter(([, r]) => r.n !== r.max).map(([room]) => room);
  const dbCheckSeconds = Math.round((Date.now() - checkStart) / 1000);
  let dbBytes = '';
  try {
    dbBytes = execFileSync('du', ['-sh', stack.db.dir], { encoding: 'utf8' }).split('\t')[0]!;
  } catch {
    dbBytes = '?';
  }
  await stack.stop();

  // Acked (stored) messages per minute of the run, from the nodes' counters.
  const perMinute: number[] = [];
  const perMinuteDetail: Array<{
    minute: number;
    ackedPerSecond: number;
    database: Record<string, string>;
    degradedSamples: number;
    shed: number;
    tailLoads: number;
    tailDrops: Record<string, number>;
    /** Event-bus requests that did not succeed, by outcome; appends the nodes' stores failed. */
    busFailures: Record<string, number>;
    appendErrors: number;
    /** Database appends and bus requests in the minute, and how many were over 50 / 250 / 1000 ms. */
    slow: Record<string, number>;
    /** History pages and latest reads asked of the nodes' stores (tails included). */
    storeReads: { history: number; latest: number };
    /** Share of the machine's CPU time the hypervisor gave to others (a busy host slows everything). */
    stealPercent: number;
    /** The main probes' 2-s progress windows in this minute: worst p99, worst max, how many had p99 > 50 ms. */
    latencyMs: { worstP99: number; max: number; windows: number; windowsP99Over50: number };
  }> = [];
  const first = samples.find((s) => s.at >= loadStart) ?? samples[0]!;
  for (let m = 0; m < MINUTES; m++) {
    const from = samples.find((s) => s.at >= loadStart + m * 60_000);
    const to = samples.find((s) => s.at >= loadStart + (m + 1) * 60_000);
    if (!from || !to) break;
    perMinute.push(Math.round(((to.stored - from.stored) * 1000) / (to.at - from.at)));
    // Counters restart with a node; every node runs throughout here, so differences are safe.
    const ops: Record<string, string> = {};
    for (const op of DB_OPS) {
      const calls = to.db[op].calls - from.db[op].calls;
      const ms = calls > 0 ? ((to.db[op].seconds - from.db[op].seconds) * 1000) / calls : 0;
      ops[op] = `${calls} calls, ${ms.toFixed(ms < 10 ? 1 : 0)} ms avg`;
    }
    const inMinute = samples.filter((s) => s.at >= from.at && s.at < to.at);
    // A sample's latency covers the lines logged since the previous sample.
    const inMinuteAfter = samples.filter((s) => s.at > from.at && s.at <= to.at);
    const drops = Object.fromEntries(
      TAIL_DROP_REASONS.map((r) => [r, (to.tailDrops[r] ?? 0) - (from.tailDrops[r] ?? 0)]).filter(
        ([, n]) => (n as number) > 0,
      ),
    ) as Record<string, number>;
    perMinuteDetail.push({
      minute: m,
      ackedPerSecond: perMinute.at(-1)!,
      database: ops,
      degradedSamples: inMinute.filter((s) => s.degraded > 0).length,
      shed: to.shed - from.shed,
      tailLoads: to.tailLoads - from.tailLoads,
      tailDrops: drops,
      busFailures: Object.fromEntries(
        BUS_OUTCOMES.filter((o) => o !== 'ok').map((o) => [
          o,
          (to.busRequests[o] ?? 0) - (from.busRequests[o] ?? 0),
        ]),
      ),
      appendErrors: to.appendErrors - from.appendErrors,
      slow: Object.fromEntries(Object.keys(to.slow).map((k) => [k, (to.slow[k] ?? 0) - (from.slow[k] ?? 0)])),
      storeReads: {
        history: to.storeReads.history - from.storeReads.history,
        latest: to.storeReads.latest - from.storeReads.latest,
      },
      stealPercent: Math.round((100 * (to.steal - from.steal) * 1000) / (to.at - from.at) / cpus().length),
      latencyMs: {
        worstP99: Math.max(0, ...inMinuteAfter.map((s) => s.latency.p99)),
        max: Math.max(0, ...inMinuteAfter.map((s) => s.latency.max)),
        windows: inMinuteAfter.reduce((n, s) => n + s.latency.windows, 0),
        windowsP99Over50: inMinuteAfter.reduce((n, s) => n + s.latency.over50, 0),
      },
    });
  }
  const all = [...verdicts, ...churn];
  const sum = (f: (v: ProbeVerdict) => number) => all.reduce((n, v) => n + f(v), 0);
  const p50s = verdicts.map((v) => v.latencyMs.p50).sort((a, b) => a - b);
  const result = {
    minutes: MINUTES,
    nodeEnv: env,
    rateAsked: RATE,
    probes: PROBES,
    clientsPerProbe: CLIENTS,
    churnProbes: churn.length,
    churnFailures,
    probeFailures,
    sent: sum((v) => v.sent),
    acked: sum((v) => v.acked),
    failed: sum((v) => v.failed),
    unacked: sum((v) => v.unacked),
    lost: sum((v) => v.lost),
    duplicates: sum((v) => v.duplicates),
    outOfOrder: sum((v) => v.outOfOrder),
    reconnects: sum((v) => v.reconnects),
    probesOk: all.filter((v) => v.ok).length,
    probesNotOk: all.filter((v) => !v.ok).map((v) => v.reasons.slice(0, 3)),
    latencyMs: {
      p50median: p50s[Math.floor(p50s.length / 2)] ?? null,
      p99worst: Math.max(...verdicts.map((v) => v.latencyMs.p99)),
      maxWorst: Math.max(...verdicts.map((v) => v.latencyMs.max)),
      perProbe: verdicts.map((v) => v.latencyMs),
      ackPerProbe: verdicts.map((v) => v.ackLatencyMs),
    },
    ackedPerSecondByMinute: perMinute,
    byMinute: perMinuteDetail,
    storedMessages: storedDocs,
    storedRooms: roomsSeen.size,
    roomsWithHoles,
    dbCheckSeconds,
    storedMinusAcked: storedDocs - all.reduce((n, v) => n + v.acked, 0),
    probeStoreChecks: all.map((v) => v.store),
    nodeCounterStored: (samples.at(-1)?.stored ?? 0) - (first?.stored ?? 0),
    ferretDbDataDir: dbBytes,
    tailMessagesMax: Math.max(0, ...samples.map((s) => s.tailMessages)),
    degradedSamples: samples.filter((s) => s.degraded > 0).length,
    cpuSeconds: {
      ...Object.fromEntries([...cpu].map(([k, v]) => [k, Math.round((v.last - v.first) * 10) / 10])),
      churnProbes: Math.round(churnCpu * 10) / 10,
    },
    wallSeconds: Math.round((Date.now() - t0) / 1000),
  };
  const json = JSON.stringify(result, null, 1);
  console.log(json);
  if (values.out) writeFileSync(values.out, `${json}\n`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
