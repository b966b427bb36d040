/**
 * FerretDB 1.x (MongoDB wire protocol on SQLite) for tests.
 *
 * The server is a tiny Go program (./ferretdb/main.go) embedding
 * github.com/FerretDB/FerretDB/ferretdb; it is built once into the cache.
 *
 * CLI:
 *   npx tsx tests/infra/ferretdb.ts build
 *   npx tsx tests/infra/ferretdb.ts start [--dir DIR] [--port PORT]
 */
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync, realpathSync } from 'node:fs';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { acquireLock, cacheDir, ensureDir } from './cache.js';
import { removeOnExit, startProcess } from './proc.js';
import type { ManagedProcess } from './proc.js';

const BUILD_TIMEOUT_MS = 10 * 60_000;
const START_TIMEOUT_MS = 30_000;
const SRC_DIR = join(dirname(fileURLToPath(import.meta.url)), 'ferretdb');

export interface FerretDb {
  /** mongodb://127.0.0.1:PORT/ */
  url: string;
  port: number;
  /** Directory holding the SQLite files. */
  dir: string;
  /** Current process (replaced by restart). */
  proc: ManagedProcess;
  /** SIGTERM (SIGKILL after 10 s); removes the data dir if it was a temp dir created here. */
  stop(): Promise<void>;
  /** Stops and starts again on the same port with the same data dir. */
  restart(): Promise<void>;
}

export interface StartFerretDbOptions {
  /** Data directory (default: a fresh temp dir, removed by stop()). */
  dir?: string;
  /** Port on 127.0.0.1 (default: any free port, chosen by the server itself). */
  port?: number;
  /** FerretDB log level: debug, info, warn (default) or error. */
  logLevel?: string;
  /** Output is also appended to this file. */
  logFile?: string;
}

export function goBin(): string {
  const fromRoot = process.env.GOROOT ? join(process.env.GOROOT, 'bin', 'go') : undefined;
  if (fromRoot && existsSync(fromRoot)) return fromRoot;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'go'))) return join(dir, 'go');
  }
  if (existsSync('/usr/local/go/bin/go')) return '/usr/local/go/bin/go';
  return 'go';
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Hash of the program's sources: a changed main.go/go.mod/go.sum means a new binary. */
function sourceHash(): string {
  const h = createHash('sha256');
  for (const f of ['main.go', 'go.mod', 'go.sum']) {
    h.update(f)
      .update('\0')
      .update(readFileSync(join(SRC_DIR, f)))
      .update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

let binaryPromise: Promise<string> | undefined;

/**
 * Path of the FerretDB test server binary, `<cacheDir>/bin/ferretdb-switchboard-<hash>`,
 * building it with `go build` if needed (module and build caches under `<cacheDir>/go`).
 * Safe to call concurrently, from one or several processes.
 */
export function ensureFerretDbBinary(): Promise<string> {
  binaryPromise ??= buildBinary().catch((err: unknown) => {
    binaryPromise = undefined;
    throw err;
  });
  return binaryPromise;
}

async function buildBinary(): Promise<string> {
  const binDir = ensureDir(join(cacheDir, 'bin'));
  const out = join(binDir, `ferretdb-switchboard-${sourceHash()}`);
  if (isExecutable(out)) return out;

  const release = await acquireLock(
    `${out}.lock`,
    () => isExecutable(out),
    BUILD_TIMEOUT_MS + 60_000,
    BUILD_TIMEOUT_MS + 30_000,
  );
  if (!release) return out;
  const tmpOut = `${out}.tmp-${process.pid}`;
  try {
    if (isExecutable(out)) return out;
    const goDir = ensureDir(join(cacheDir, 'go'));
    const args = ['build', '-trimpath', '-ldflags=-s -w', '-o', tmpOut, '.'];
    const go = startProcess('go-build-ferretdb', goBin(), args, {
      cwd: SRC_DIR,
      env: {
        GOMODCACHE: join(goDir, 'mod'),
        GOCACHE: join(goDir, 'build'),
        GOFLAGS: '-mod=mod',
        GOWORK: 'off',
        GOTOOLCHAIN: 'local',
        CGO_ENABLED: '0',
      },
    });
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      go.exited,
      new Promise<'timeout'>((r) => {
        timer = setTimeout(() => r('timeout'), BUILD_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (result === 'timeout') {
      await go.stop(5000);
      throw new Error(
        `building the FerretDB test server timed out after ${BUILD_TIMEOUT_MS / 1000}s ` +
          `(cd ${SRC_DIR} && go ${args.join(' ')}); output:\n${go.output().slice(-3000)}`,
      );
    }
    if (result.code !== 0 || !isExecutable(tmpOut)) {
      throw new Error(
        `could not build the FerretDB test server (exit code ${result.code}, signal ${result.signal}; ` +
          `is the Go module proxy reachable, or ${join(goDir, 'mod')} populated?). ` +
          `Command: cd ${SRC_DIR} && go ${args.join(' ')}\n${go.output().slice(-3000)}`,
      );
    }
    await rename(tmpOut, out);
    return out;
  } finally {
    await rm(tmpOut, { force: true });
    await release();
  }
}

/** Resolves once a TCP connection to 127.0.0.1:port succeeds (bounded). */
function tcpCheck(port: number, timeoutMs = 2000): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`TCP connect to 127.0.0.1:${port} timed out after ${timeoutMs}ms`));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.end();
      resolvePromise();
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`TCP connect to 127.0.0.1:${port} failed: ${err.message}`));
    });
  });
}

const LISTENING_RE = /ferretdb listening on 127\.0\.0\.1:(\d+)/;

async function launch(
  bin: string,
  dir: string,
  port: number,
  opts: StartFerretDbOptions,
): Promise<{ proc: ManagedProcess; port: number }> {
  const proc = startProcess(
    'ferretdb',
    bin,
    ['-listen', `127.0.0.1:${port}`, '-dir', dir, '-log-level', opts.logLevel ?? 'warn'],
    opts.logFile ? { logFile: opts.logFile } : {},
  );
  try {
    const m = await proc.waitForOutput(LISTENING_RE, START_TIMEOUT_MS);
    const actual = Number(typeof m === 'string' ? NaN : m[1]);
    if (!Number.isInteger(actual) || actual <= 0)
      throw new Error(`could not parse FerretDB port from ${String(m)}`);
    await tcpCheck(actual);
    return { proc, port: actual };
  } catch (err) {
    await proc.stop(5000);
    throw new Error(`FerretDB did not start: ${(err as Error).message}`);
  }
}

export async function startFerretDb(opts: StartFerretDbOptions = {}): Promise<FerretDb> {
  const bin = await ensureFerretDbBinary();
  const ownDir = opts.dir === undefined;
  const dir = opts.dir !== undefined ? resolve(opts.dir) : await mkdtemp(join(tmpdir(), 'sb-ferretdb-'));
  const cancelDirCleanup = ownDir ? removeOnExit(dir) : () => undefined;
  let started: { proc: ManagedProcess; port: number };
  try {
    started = await launch(bin, dir, opts.port ?? 0, opts);
  } catch (err) {
    if (ownDir) await rm(dir, { recursive: true, force: true });
    cancelDirCleanup();
    throw err;
  }

  let stopping: Promise<void> | undefined;
  const handle: FerretDb = {
    url: `mongodb://127.0.0.1:${started.port}/`,
    port: started.port,
    dir,
    proc: started.proc,
    stop: () => {
      stopping ??= (async () => {
        await handle.proc.stop(10_000);
        if (ownDir) await rm(dir, { recursive: true, force: true });
        cancelDirCleanup();
      })();
      return stopping;
    },
    restart: async () => {
      if (stopping) throw new Error('FerretDB was stopped');
      await handle.proc.stop(10_000);
      handle.proc = (await launch(bin, dir, handle.port, opts)).proc;
    },
  };
  return handle;
}

/* ------------------------------------------------------------------------ */
/* CLI                                                                       */
/* ------------------------------------------------------------------------ */

function argValue(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function cli(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (cmd === 'build') {
    const t0 = Date.now();
    const bin = await ensureFerretDbBinary();
    console.log(JSON.stringify({ bin, ms: Date.now() - t0 }));
    return;
  }
  if (cmd === 'start') {
    const dir = argValue(rest, '--dir');
    const port = argValue(rest, '--port');
    const t0 = Date.now();
    const fdb = await startFerretDb({ ...(dir ? { dir } : {}), ...(port ? { port: Number(port) } : {}) });
    console.log(JSON.stringify({ url: fdb.url, dir: fdb.dir, pid: fdb.proc.pid, startMs: Date.now() - t0 }));
    const shutdown = (): void => {
      fdb.stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.on('SIGINT', shutdown);
    process.on('SIGTERM', shutdown);
    return;
  }
  console.error(
    'usage: tsx tests/infra/ferretdb.ts build\n' +
      '       tsx tests/infra/ferretdb.ts start [--dir DIR] [--port PORT]',
  );
  process.exitCode = 2;
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  cli(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
