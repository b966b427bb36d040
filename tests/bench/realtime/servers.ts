/**
 * The servers under test, each started as its own process: Switchboard (the built backend), the raw
 * `ws` broadcast peer, Socket.IO (optionally on Redis), and Redis itself.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDebianPackages } from '../../infra/debian.js';
import { type ManagedProcess, pickPorts } from '../../infra/proc.js';
import { repoRoot, startServer } from './harness.js';

export interface Server {
  name: string;
  proc: ManagedProcess;
  url: string;
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

export async function startSwitchboard(name: string, env: Record<string, string> = {}): Promise<Server> {
  buildBackend();
  const [port] = await pickPorts(1);
  // BENCH_SB_MAIN: another build of the backend (e.g. an older commit's, for before/after runs).
  const main = process.env.BENCH_SB_MAIN ?? 'backend/dist/main.js';
  const proc = startServer(name, process.execPath, [...profArgs(), main], {
    HOST: '127.0.0.1',
    PORT: String(port),
    GRPC_PORT: '0',
    LOG_LEVEL: 'info',
    DATA_DIR: mkdtempSync(join(tmpdir(), 'sb-bench-')),
    // The publisher is one socket; the default 200 frames/s would measure the rate limit.
    BRIDGE_RATE_PER_SEC: '1000000',
    // The publisher sends open-loop at the step's rate: the in-flight limit would measure itself.
    BRIDGE_MAX_INFLIGHT: '100000',
    // Every benchmark client connects from 127.0.0.1: the per-address caps would measure themselves.
    BRIDGE_MAX_CONNECTIONS_PER_ADDRESS: '1000000',
    BRIDGE_MAX_INFLIGHT_PER_ADDRESS: '1000000',
    ADMIN_PORT: '0',
    ...env,
  });
  await proc.waitForOutput('switchboard node listening', 60_000);
  return { name, proc, url: `http://127.0.0.1:${port}` };
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
