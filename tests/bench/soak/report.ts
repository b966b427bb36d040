import type { ProbeReport } from '../../../messages-lib/src/probe/index.js';

export interface SoakSample {
  /** Seconds since the main probe started. */
  t: number;
  phase: string;
  serverRssMb: number;
  /** Anonymous (heap, buffers) and file-backed (LevelDB's mmapped tables) parts of the RSS. */
  serverRssAnonMb: number;
  serverRssFileMb: number;
  serverHeapUsedMb: number;
  /** The node's own /metrics: loop delay since the previous sample, sampling period excluded. */
  serverLoopDelayMs: { p99: number; max: number };
  /** The node's store appends so far (its histogram): all, and those over 10, 25 and 50 ms. */
  serverAppends?: { count: number; over10: number; over25: number; over50: number };
  probe?:
    | {
        latencyMs: { p50: number; p99: number; max: number };
        loopDelayMs: { p99: number; max: number };
        rssMb: number;
      }
    | undefined;
  load: number;
}

export interface ProbeTickLine {
  phase: string;
  /** Seconds since sending began. */
  t: number;
  latencyMs: { p50: number; p99: number; max: number };
  loopDelayMs: { p99: number; max: number };
  rssMb: number;
}

export interface SoakResult {
  date: string;
  minutes: number;
  load: { clients: number; rooms: number; rate: number };
  churn: {
    clients: number;
    rooms: number;
    rate: number;
    durationS: number;
    runs: number;
    ok: number;
    lost: number;
    duplicates: number;
    p99MaxMs: number;
    maxMs: number;
  };
  verdict: ProbeReport;
  samples: SoakSample[];
  ticks: ProbeTickLine[];
  cpus: number;
}

/** The figures the goals are stated in. */
export function soakFigures(r: SoakResult) {
  const sending = r.samples.filter((s) => s.phase === 'sending');
  const warmupS = Math.min(120, (r.minutes * 60) / 4);
  const afterWarmup = sending.filter((s) => s.t >= warmupS + (sending[0]?.t ?? 0));
  const rssAtWarmup = afterWarmup[0]?.serverRssMb ?? NaN;
  const rssMaxSending = Math.max(...afterWarmup.map((s) => s.serverRssMb));
  const rssEndSending = sending.at(-1)?.serverRssMb ?? NaN;
  const after = r.samples.filter((s) => s.phase !== 'sending' && s.phase !== 'connecting');
  const peakAfter = after.reduce<SoakSample | undefined>(
    (a, s) => (!a || s.serverRssMb > a.serverRssMb ? s : a),
    undefined,
  );
  const rssAfterSending = peakAfter?.serverRssMb ?? NaN;
  const probeTicks = r.ticks.filter((t) => t.phase === 'sending');
  const probeRssAt60 = probeTicks.find((t) => t.t >= 60)?.rssMb ?? NaN;
  const probeRssMax = Math.max(...probeTicks.map((t) => t.rssMb));
  const serverLag = sending.map((s) => s.serverLoopDelayMs.max).filter(Number.isFinite);
  // The RSS swings with every GC cycle (±15 % within a minute): medians over two minutes after
  // the warm-up and over the last two minutes of sending show the trend.
  const start = afterWarmup[0]?.t ?? NaN;
  const end = sending.at(-1)?.t ?? NaN;
  const rssMedianEarly = median(afterWarmup.filter((s) => s.t < start + 120).map((s) => s.serverRssMb));
  const rssMedianLate = median(afterWarmup.filter((s) => s.t > end - 120).map((s) => s.serverRssMb));
  return {
    warmupS,
    rssAtWarmup,
    rssMaxSending,
    rssEndSending,
    rssGrowthPct: Math.round(((rssMaxSending - rssAtWarmup) / rssAtWarmup) * 1000) / 10,
    rssMedianEarly,
    rssMedianLate,
    rssMedianGrowthPct: Math.round(((rssMedianLate - rssMedianEarly) / rssMedianEarly) * 1000) / 10,
    rssAfterSending,
    endOfSending: sending.at(-1),
    peakAfter,
    probeRssAt60,
    probeRssMax,
    serverLoopDelayMaxMs: Math.max(...serverLag),
    serverLoopDelayMedianOfMaxMs: median(serverLag),
    probeTickMaxP99: Math.max(...probeTicks.map((t) => t.latencyMs.p99)),
    appends: appendsBetween(sending[0], sending.at(-1)),
  };
}

/** Store appends between two samples, and how many took over 10 / 25 / 50 ms. */
function appendsBetween(
  from: SoakSample | undefined,
  to: SoakSample | undefined,
): { count: number; over10: number; over25: number; over50: number } | undefined {
  const a = from?.serverAppends;
  const b = to?.serverAppends;
  if (!a || !b) return undefined;
  return {
    count: b.count - a.count,
    over10: b.over10 - a.over10,
    over25: b.over25 - a.over25,
    over50: b.over50 - a.over50,
  };
}

function pct(n: number, of: number): string {
  return of > 0 ? `${Math.round((n / of) * 1000) / 10} %` : '?';
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
}

export function soakMarkdown(r: SoakResult): string {
  const v = r.verdict;
  const f = soakFigures(r);
  const lines = [
    `# Soak: ${r.minutes} min, ${r.load.clients} clients / ${r.load.rooms} rooms / ${r.load.rate} msg/s + churn`,
    '',
    `${r.date}, ${r.cpus} cores, one embedded node (LevelDB), one probe process; churn: ${r.churn.runs} probes of ${r.churn.clients} clients / ${r.churn.rooms} rooms / ${r.churn.rate} msg/s for ${r.churn.durationS} s, one after another.`,
    '',
    '| figure | value | goal |',
    '|---|---|---|',
    `| verdict | ${v.ok ? 'ok' : `NOT ok: ${v.reasons.join('; ')}`} (sent ${v.sent}, acked ${v.acked}, delivered ${v.delivered} of ${v.expected}) | ok |`,
    `| lost / duplicates / out of order | ${v.lost} / ${v.duplicates} / ${v.outOfOrder} | 0 / 0 / 0 |`,
    `| end-to-end latency p50 / p99 / max | ${v.latencyMs.p50} / ${v.latencyMs.p99} / ${v.latencyMs.max} ms | p99 ≤ 20, max ≤ 250 |`,
    `| longest delivery gap (max / p99 over clients) | ${v.maxDeliveryGapMs} / ${v.p99DeliveryGapMs} ms | |`,
    `| probe loop delay p99 / max | ${v.probeEventLoopDelayMs.p99} / ${v.probeEventLoopDelayMs.max} ms | |`,
    `| probe RSS at 1 min / peak while sending / peak overall | ${f.probeRssAt60} / ${f.probeRssMax} / ${v.probeMaxRssMb} MB | ≤ 250, flat |`,
    `| server RSS after ${f.warmupS} s warm-up / peak while sending / end of sending | ${f.rssAtWarmup} / ${f.rssMaxSending} / ${f.rssEndSending} MB (growth ${f.rssGrowthPct} %) | growth ≤ 10 % |`,
    `| server RSS, median of 2 min after the warm-up → median of the last 2 min of sending | ${f.rssMedianEarly} → ${f.rssMedianLate} MB (growth ${f.rssMedianGrowthPct} %) | growth ≤ 10 % |`,
    f.peakAfter
      ? `| server RSS after sending (settle, history read): peak | ${f.rssAfterSending} MB (anonymous ${f.peakAfter.serverRssAnonMb}, file-backed ${f.peakAfter.serverRssFileMb}, JS heap used ${f.peakAfter.serverHeapUsedMb}; at the end of sending: anonymous ${f.endOfSending?.serverRssAnonMb}, file-backed ${f.endOfSending?.serverRssFileMb}, heap ${f.endOfSending?.serverHeapUsedMb}) | |`
      : `| server RSS after sending (settle, history read) | not sampled: over before the next 5-s sample (the probe had checked the history while it ran) | |`,
    `| server loop delay, max per 5 s: median / max while sending | ${f.serverLoopDelayMedianOfMaxMs} / ${f.serverLoopDelayMaxMs} ms | |`,
    ...(f.appends
      ? [
          `| server store appends while sending (fsynced LevelDB batches): over 10 / 25 / 50 ms | ${f.appends.over10} / ${f.appends.over25} / ${f.appends.over50} of ${f.appends.count} (${pct(f.appends.over25, f.appends.count)} over 25 ms) | |`,
        ]
      : []),
    `| churn probes: ok / runs, lost, duplicates, worst p99, worst max | ${r.churn.ok} / ${r.churn.runs}, ${r.churn.lost}, ${r.churn.duplicates}, ${r.churn.p99MaxMs} ms, ${r.churn.maxMs} ms | all ok |`,
    ...(v.warnings.length ? [`| probe warnings | ${v.warnings.join('; ')} | none |`] : []),
    '',
    'Per minute (probe: the worst 2 s interval of the minute; server: samples every 5 s):',
    '',
    '| min | probe p99 / max ms | probe loop max ms | probe RSS MB | server RSS (anon + file) MB | server loop max ms | store appends > 25 ms | load |',
    '|---|---|---|---|---|---|---|---|',
  ];
  const lastMinute = Math.ceil((r.ticks.at(-1)?.t ?? 0) / 60);
  for (let m = 0; m <= lastMinute; m++) {
    const ticks = r.ticks.filter((t) => t.phase === 'sending' && t.t >= m * 60 && t.t < (m + 1) * 60);
    const samples = r.samples.filter((s) => s.t >= m * 60 && s.t < (m + 1) * 60);
    if (!ticks.length && !samples.length) continue;
    const mx = (xs: number[]) => (xs.length ? Math.max(...xs.filter(Number.isFinite)) : NaN);
    const before = r.samples.filter((s) => s.t < m * 60).at(-1);
    const appends = appendsBetween(before, samples.at(-1));
    lines.push(
      `| ${m} | ${mx(ticks.map((t) => t.latencyMs.p99))} / ${mx(ticks.map((t) => t.latencyMs.max))} | ${mx(ticks.map((t) => t.loopDelayMs.max))} | ${mx(ticks.map((t) => t.rssMb))} | ${mx(samples.map((s) => s.serverRssMb))} (${mx(samples.map((s) => s.serverRssAnonMb))} + ${mx(samples.map((s) => s.serverRssFileMb))}) | ${mx(samples.map((s) => s.serverLoopDelayMs.max))} | ${appends ? `${appends.over25} of ${appends.count}` : '?'} | ${mx(samples.map((s) => s.load))} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}
