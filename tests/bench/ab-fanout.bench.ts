/**
 * A/B fan-out: two Switchboard builds measured side by side in interleaved rounds at the fixed
 * rate (the paired method of realtime.bench.ts), for a change's CPU per delivery.
 *   BENCH_A_MAIN=<old backend/dist/main.js> node --import tsx tests/bench/ab-fanout.bench.ts
 * B is this worktree's build. BENCH_ROUNDS (default 7), BENCH_SUBSCRIBERS (default 1,000).
 */
import { runFanoutInterleaved } from './realtime/fanout.js';
import { type Server, startSwitchboard } from './realtime/servers.js';

const a = process.env.BENCH_A_MAIN;
if (!a) throw new Error('BENCH_A_MAIN: the other build to compare with (a backend/dist/main.js)');
const rounds = Number(process.env.BENCH_ROUNDS ?? 7);
const subscribers = Number(process.env.BENCH_SUBSCRIBERS ?? 1_000);
const log = (line: string): void => void process.stderr.write(`${line}\n`);

const servers: Server[] = [];
try {
  process.env.BENCH_SB_MAIN = a;
  servers.push(await startSwitchboard('sb-A'));
  delete process.env.BENCH_SB_MAIN;
  servers.push(await startSwitchboard('sb-B'));
  const results = await runFanoutInterleaved(
    servers.map((s) => ({
      kind: 'sb' as const,
      urls: [s.url],
      pubUrl: s.url,
      serverPids: () => [s.proc.pid],
      subscribers,
      rates: [40_000],
      fixedRate: 40_000,
      stepMs: 5_000,
      generators: 2,
      repeatFixed: rounds - 1,
      log,
    })),
  );
  const [ra, rb] = results.map((r) => r.fixedRuns.map((x) => x.cpuPerDelivery));
  const ratios = ra!.map((x, k) => rb![k]! / x);
  const sorted = [...ratios].sort((x, y) => x - y);
  console.log(`A µs/delivery per round: ${ra!.map((x) => x.toFixed(3)).join(' ')}`);
  console.log(`B µs/delivery per round: ${rb!.map((x) => x.toFixed(3)).join(' ')}`);
  console.log(`B/A per round: ${ratios.map((x) => x.toFixed(3)).join(' ')}`);
  console.log(
    `B/A median: ${sorted[Math.floor(sorted.length / 2)]!.toFixed(3)} (${subscribers} subscribers, 40,000 deliveries/s, 5 s rounds)`,
  );
} finally {
  await Promise.allSettled(servers.map((s) => s.proc.stop()));
}
process.exit(0);
