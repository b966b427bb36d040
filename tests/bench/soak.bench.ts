/**
 * The soak (not part of the test suite): `npm run bench:soak [-- --minutes N]` (30 by default).
 * One embedded node (LevelDB store), one switchboard-probe process with 500 clients in 50 rooms
 * sending 500 messages/s in all, and client churn: a short 100-client probe after another, each
 * connecting, sending, reading the history back and leaving. Samples the server's RSS and event
 * loop delay (its /metrics) every 5 s; writes tests/bench/SOAK.json, SOAK.md and SOAK.png
 * (latency over time). See docs/benchmarks.md ("Soak"). `-- --render SOAK.json` writes SOAK.md and
 * SOAK.png again from a run's JSON (after a change to the report), without running anything.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { ProbeReport } from '../../messages-lib/src/probe/index.js';
import { metric } from '../helpers/metrics-page.js';
import { type ManagedProcess, stopAll } from '../infra/proc.js';
import { loadAverage, repoRoot, rssBytes, sleep, startServer } from './realtime/harness.js';
import { startSwitchboard } from './realtime/servers.js';
import { renderSoakChart } from './soak/chart.js';
import { type ProbeTickLine, soakMarkdown, type SoakResult, type SoakSample } from './soak/report.js';

const OUT_DIR = process.env.BENCH_OUT_DIR ?? fileURLToPath(new URL('.', import.meta.url));
const LOAD = { clients: 500, rooms: 50, rate: 500 };
const CHURN = { clients: 100, rooms: 5, rate: 20, durationS: 20, settleS: 15 };
const SAMPLE_MS = 5_000;
const cli = join(repoRoot, 'messages-lib/dist/probe/cli.js');

const log = (line: string): void => void process.stderr.write(`${line}\n`);

function probe(
  name: string,
  url: string,
  o: { clients: number; rooms: number; rate: number; durationS: number; settleS: number },
): ManagedProcess {
  return startServer(name, process.execPath, [
    cli,
    '--url',
    url,
    '--clients',
    String(o.clients),
    '--rooms',
    String(o.rooms),
    '--rate',
    String(o.rate),
    '--duration',
    String(o.durationS),
    '--settle',
    String(o.settleS),
    '--connect-timeout',
    '120',
    '--json-only',
  ]);
}

function verdictOf(p: ManagedProcess): ProbeReport | undefined {
  const line = p
    .output()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{"ok":'));
  return line ? (JSON.parse(line) as ProbeReport) : undefined;
}

/**
 * Where the server's resident memory is: anonymous (the JS heap, native buffers) or file pages
 * mapped in (LevelDB mmaps its table files: reading history touches them, and the kernel can drop
 * them again), and the V8 heap from the node's own metrics.
 */
function memoryOf(pid: number): { serverRssAnonMb: number; serverRssFileMb: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
    return {
      serverRssAnonMb: Math.round(kb('RssAnon') / 1024),
      serverRssFileMb: Math.round(kb('RssFile') / 1024),
    };
  } catch {
    return { serverRssAnonMb: NaN, serverRssFileMb: NaN };
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { minutes: { type: 'string' }, render: { type: 'string' } } });
  if (values.render !== undefined) {
    const result = JSON.parse(readFileSync(values.render, 'utf8')) as SoakResult;
    writeFileSync(join(OUT_DIR, 'SOAK.md'), soakMarkdown(result));
    await renderSoakChart(result, join(OUT_DIR, 'SOAK.png'));
    log(soakMarkdown(result));
    return;
  }
  const minutes = Number(values.minutes ?? 30);
  if (!(minutes > 0 && minutes <= 24 * 60)) throw new Error('--minutes: a number > 0');
  execFileSync(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-b', 'messages-lib'], {
    cwd: repoRoot,
    stdio: 'inherit',
  });
  // The product's default per-socket frame limit (the bench harness raises it for its publisher).
  const server = await startSwitchboard('switchboard', { BRIDGE_RATE_PER_SEC: '200' });
  const pid = server.proc.pid;
  log(
    `soak: node ${server.url} (pid ${pid}), ${minutes} min of ${LOAD.clients} clients / ${LOAD.rooms} rooms / ${LOAD.rate} msg/s + churn`,
  );
  const durationS = Math.round(minutes * 60);
  const main = probe('probe', server.url, { ...LOAD, durationS, settleS: 60 });
  const t0 = Date.now();
  const samples: SoakSample[] = [];
  const churn: ProbeReport[] = [];
  let churnRuns = 0;
  let phase = 'connecting';
  let stopping = false;

  // Progress lines of the main probe: the interval's latency, its loop delay and RSS.
  const progress =
    /probe: (\w+) t=(-?[\d.]+)s .*delivered=(\d+) reconnects=(\d+) latency=(\d+)\/(\d+)\/(\d+)ms loop=([\d.]+)\/([\d.]+)ms rss=(\d+)MB/;
  let seen = 0;
  let lastProbe: RegExpExecArray | undefined;
  // Every 5 s while sending, every second after (the history read at the end is short).
  let sampling = true;
  const sampleLoop = async (): Promise<void> => {
    while (sampling) {
      await sleep(phase === 'sending' || phase === 'connecting' ? SAMPLE_MS : 1_000);
      if (sampling) await sample();
    }
  };
  const sample = async (): Promise<void> => {
    await (async () => {
      const out = main.output();
      for (const line of out.slice(seen).split('\n')) {
        const m = progress.exec(line);
        if (m) lastProbe = m;
      }
      seen = out.length;
      let lag = { p99: NaN, max: NaN };
      let heapMb = NaN;
      let serverAppends: SoakSample['serverAppends'];
      try {
        const text = await (
          await fetch(`${server.adminUrl}/metrics`, { signal: AbortSignal.timeout(4_000) })
        ).text();
        lag = {
          p99: metric(text, 'nodejs_eventloop_lag_p99_seconds') * 1000,
          max: metric(text, 'nodejs_eventloop_lag_max_seconds') * 1000,
        };
        heapMb = Math.round(metric(text, 'nodejs_heap_size_used_bytes') / 1048576);
        const appends = (le?: string) =>
          metric(
            text,
            le === undefined
              ? 'switchboard_store_operation_duration_seconds_count'
              : 'switchboard_store_operation_duration_seconds_bucket',
            { op: 'append', ...(le === undefined ? {} : { le }) },
          );
        const count = appends();
        serverAppends = {
          count,
          over10: count - appends('0.01'),
          over25: count - appends('0.025'),
          over50: count - appends('0.05'),
        };
      } catch {
        // the node is busy or gone: the sample says NaN
      }
      phase = lastProbe?.[1] ?? phase;
      samples.push({
        t: Math.round((Date.now() - t0) / 1000),
        phase,
        serverRssMb: Math.round(rssBytes(pid) / 1048576),
        ...memoryOf(pid),
        serverLoopDelayMs: { p99: round1(lag.p99), max: round1(lag.max) },
        serverHeapUsedMb: heapMb,
        ...(serverAppends ? { serverAppends } : {}),
        probe: lastProbe
          ? {
              latencyMs: { p50: Number(lastProbe[5]), p99: Number(lastProbe[6]), max: Number(lastProbe[7]) },
              loopDelayMs: { p99: Number(lastProbe[8]), max: Number(lastProbe[9]) },
              rssMb: Number(lastProbe[10]),
            }
          : undefined,
        load: loadAverage(),
      });
      lastProbe = undefined;
    })();
  };
  const sampler = sampleLoop();

  await main.waitForOutput('probe: running', 180_000);
  log('soak: main probe running; churn starts');
  const churnLoop = (async () => {
    while (!stopping) {
      const p = probe(`churn-${churnRuns}`, server.url, CHURN);
      churnRuns++;
      await p.exited;
      const v = verdictOf(p);
      if (v) churn.push(v);
      else log(`soak: churn probe ${churnRuns} printed no verdict:\n${p.output().slice(-1500)}`);
    }
  })();
  const end = await main.exited;
  stopping = true;
  await churnLoop;
  sampling = false;
  await sampler;
  const verdict = verdictOf(main);
  await server.proc.stop(60_000);
  if (!verdict)
    throw new Error(`the main probe printed no verdict (exit ${end.code}):\n${main.output().slice(-3000)}`);

  const result: SoakResult = {
    date: new Date().toISOString(),
    minutes,
    load: LOAD,
    churn: {
      ...CHURN,
      runs: churn.length,
      ok: churn.filter((c) => c.ok).length,
      lost: churn.reduce((n, c) => n + c.lost, 0),
      duplicates: churn.reduce((n, c) => n + c.duplicates, 0),
      p99MaxMs: Math.max(0, ...churn.map((c) => c.latencyMs.p99)),
      maxMs: Math.max(0, ...churn.map((c) => c.latencyMs.max)),
    },
    verdict,
    samples,
    ticks: ticksOf(main.output()),
    cpus: (await import('node:os')).cpus().length,
  };
  writeFileSync(join(OUT_DIR, 'SOAK.json'), `${JSON.stringify(result, null, 1)}\n`);
  writeFileSync(join(OUT_DIR, 'SOAK.md'), soakMarkdown(result));
  await renderSoakChart(result, join(OUT_DIR, 'SOAK.png'));
  log(soakMarkdown(result));
}

/** Every progress line of the main probe (one per 2 s): the timeline of the plot. */
function ticksOf(output: string): ProbeTickLine[] {
  const ticks: ProbeTickLine[] = [];
  const re =
    /probe: (\w+) t=(-?[\d.]+)s .*latency=(\d+)\/(\d+)\/(\d+)ms loop=([\d.]+)\/([\d.]+)ms rss=(\d+)MB/;
  for (const line of output.split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    ticks.push({
      phase: m[1]!,
      t: Number(m[2]),
      latencyMs: { p50: Number(m[3]), p99: Number(m[4]), max: Number(m[5]) },
      loopDelayMs: { p99: Number(m[6]), max: Number(m[7]) },
      rssMb: Number(m[8]),
    });
  }
  return ticks;
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

try {
  await main();
} finally {
  await stopAll();
}
