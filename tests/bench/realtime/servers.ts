/**
 * The servers under test, each started as its own process: Switchboard (the built backend), the raw
 * `ws` broadcast peer, Socket.IO (optionally on Redis), Centrifugo (optionally on Redis), and Redis
 * itself.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CENTRIFUGO_VERSION, ensureCentrifugo } from '../../infra/centrifugo.js';
import { ensureDebianPackages } from '../../infra/debian.js';
import { type ManagedProcess, pickPorts, removeOnExit, waitFor } from '../../infra/proc.js';
import { repoRoot, startServer } from './harness.js';
import { CENT_CLIENT_NOTE, centrifugoConfig, printableConfig } from './peers/centrifugo.js';

export interface Server {
  name: string;
  proc: ManagedProcess;
  url: string;
  /** Switchboard: its admin listener (/metrics, /prestop), off the clients' port. */
  adminUrl?: string;
  /** Centrifugo: the HMAC secret its clients sign their connection tokens with. */
  secret?: string;
}

const peer = (file: string): string => fileURLToPath(new URL(`./peers/${file}`, import.meta.url));

/**
 * Node flags for server processes: `--cpu-prof` when BENCH_CPU_PROF names a directory, and
 * BENCH_NODE_ARGS (space-separated, e.g. `--trace-gc`; flags NODE_OPTIONS refuses).
 */
function profArgs(): string[] {
  const dir = process.env.BENCH_CPU_PROF;
  const extra = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  return [...(dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : []), ...extra];
}

let built = false;

/** Builds backend/dist once per run (incremental): benchmarks run the compiled code, not tsx. */
export function buildBackend(): void {
  if (built || process.env.BENCH_NO_BUILD === '1') return;
  execFileSync(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-b', 'backend'], {
    cwd: repoRoot,
    stdio: 'inherit',
  });
  built = true;
}

/**
 * The settings a Switchboard node of the many-rooms row runs with beyond its defaults (ports and
 * data directory aside): only the per-address caps, because every client connects from 127.0.0.1.
 * The per-connection limits (BRIDGE_RATE_PER_SEC 200, BRIDGE_MAX_INFLIGHT 16, the 10 s idle
 * timeout) stay at their defaults there.
 */
export const PER_ADDRESS_CAPS = {
  BRIDGE_MAX_CONNECTIONS_PER_ADDRESS: '1000000',
  BRIDGE_MAX_INFLIGHT_PER_ADDRESS: '1000000',
} as const;

/**
 * A Switchboard node. By default with the fan-out's raised per-connection limits (its publisher is
 * one socket sending open-loop); `productLimits` keeps the per-connection limits at their defaults
 * and raises only the per-address caps (PER_ADDRESS_CAPS).
 */
export async function startSwitchboard(
  name: string,
  env: Record<string, string> = {},
  opts: { productLimits?: boolean } = {},
): Promise<Server> {
  buildBackend();
  const [port, adminPort] = await pickPorts(2);
  // BENCH_SB_MAIN: another build of the backend (e.g. an older commit's, for before/after runs).
  const main = process.env.BENCH_SB_MAIN ?? 'backend/dist/main.js';
  const publisherLimits: Record<string, string> = opts.productLimits
    ? {}
    : {
        // The publisher is one socket; the default 200 frames/s would measure the rate limit.
        BRIDGE_RATE_PER_SEC: '1000000',
        // The publisher sends open-loop at the step's rate: the in-flight limit would measure itself.
        BRIDGE_MAX_INFLIGHT: '100000',
      };
  const proc = startServer(name, process.execPath, [...profArgs(), main], {
    HOST: '127.0.0.1',
    PORT: String(port),
    GRPC_PORT: '0',
    LOG_LEVEL: 'info',
    DATA_DIR: mkdtempSync(join(tmpdir(), 'sb-bench-')),
    ...publisherLimits,
    // Every benchmark client connects from 127.0.0.1: the per-address caps would measure themselves.
    ...PER_ADDRESS_CAPS,
    ADMIN_PORT: String(adminPort),
    ...env,
  });
  await proc.waitForOutput('switchboard node listening', 60_000);
  return {
    name,
    proc,
    url: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${env.ADMIN_PORT ?? adminPort}`,
  };
}

export async function startRawWs(name = 'raw ws'): Promise<Server> {
  const [port] = await pickPorts(1);
  const proc = startServer(name, process.execPath, [
    ...profArgs(),
    '--import',
    'tsx',
    peer('raw-ws-server.ts'),
    String(port),
  ]);
  await proc.waitForOutput('raw ws listening', 30_000);
  return { name, proc, url: `http://127.0.0.1:${port}` };
}

export async function startSocketIo(name = 'socket.io', redisUrl?: string): Promise<Server> {
  const [port] = await pickPorts(1);
  const proc = startServer(
    name,
    process.execPath,
    [...profArgs(), '--import', 'tsx', peer('socketio-server.ts'), String(port)],
    redisUrl ? { REDIS_URL: redisUrl } : {},
  );
  await proc.waitForOutput('socket.io listening', 30_000);
  return { name, proc, url: `http://127.0.0.1:${port}` };
}

/** Debian's redis-server (installed by tests/infra/debian.ts), no persistence, on 127.0.0.1. */
export async function startRedis(): Promise<Server> {
  const [bin] = await ensureDebianPackages(['redis-server']);
  const [port] = await pickPorts(1);
  const proc = startServer('redis', bin!, [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
  ]);
  await proc.waitForOutput('Ready to accept connections', 30_000);
  return { name: 'redis', proc, url: `redis://127.0.0.1:${port}` };
}

/**
 * The configuration each peer ran with, by peer ("Centrifugo, 1 node, memory engine"), for the
 * results page; secrets masked.
 */
export const peerConfigs = new Map<string, string>();

/** One secret and API key per run, shared by the Centrifugo nodes of a cluster. */
const centSecrets = { secret: randomBytes(24).toString('hex'), apiKey: randomBytes(24).toString('hex') };

/**
 * A Centrifugo node (tests/infra/centrifugo.ts builds the binary on first use): the configuration of
 * peers/centrifugo.ts written to a temp file, logged once per process (secrets masked). With
 * `redisUrl`, the Redis engine, so several nodes form one cluster.
 */
export async function startCentrifugo(
  name = 'centrifugo',
  opts: { redisUrl?: string; log?: (line: string) => void } = {},
): Promise<Server> {
  const bin = await ensureCentrifugo();
  const [port] = await pickPorts(1);
  const config = centrifugoConfig({ port: port!, ...centSecrets, redisUrl: opts.redisUrl, nodeName: name });
  const printable = printableConfig(config)
    .replace(`"port":${port}`, '"port":"<port>"')
    .replaceAll(String(port), '<port>');
  const key = `Centrifugo ${CENTRIFUGO_VERSION}, ${opts.redisUrl ? 'Redis engine (each node)' : '1 node, memory engine'}`;
  if (!peerConfigs.has(key)) {
    peerConfigs.set(key, printable);
    opts.log?.(`  ${key}: ${printable}`);
    opts.log?.(`  ${CENT_CLIENT_NOTE}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'sb-bench-cent-'));
  const forget = removeOnExit(dir);
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  const proc = startServer(name, bin, ['--config', file]);
  void proc.exited
    .then(() => {
      rmSync(dir, { recursive: true, force: true });
      forget();
    })
    .catch((err: unknown) => console.error(`${name}: could not remove ${dir}: ${String(err)}`));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    `${name} /health`,
    async () => {
      if (!proc.isRunning()) throw new Error(`${name} exited: ${proc.output().slice(-2000)}`);
      return (await fetch(`${url}/health`).catch(() => undefined))?.ok; // not listening yet
    },
    30_000,
    100,
  );
  // Centrifugo warns about configuration keys it does not know (just after it starts serving):
  // the bench must not run on a configuration it ignores in part.
  await new Promise((r) => setTimeout(r, 300));
  if (/unknown (key|var)/i.test(proc.output())) throw new Error(`${name}: ${proc.output().slice(-2000)}`);
  return { name, proc, url, secret: centSecrets.secret };
}
