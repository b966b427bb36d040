/**
 * FerretDB 1.x (MongoDB wire protocol on SQLite) for tests.
 *
 * The server is a tiny Go program (./ferretdb/main.go) embedding
 * github.com/FerretDB/FerretDB/ferretdb; it is built once into the cache.
 *
 * SQLite pragmas: StartFerretDbOptions.sqlitePragmas, else FERRETDB_SQLITE_PRAGMAS (even empty), else
 * DEFAULT_SQLITE_PRAGMAS; "name(value)" items separated by commas or spaces, each run on every new
 * SQLite connection (FerretDB adds busy_timeout(10000), journal_mode(wal), auto_vacuum(none)).
 *
 * CLI:
 *   npx tsx tests/infra/ferretdb.ts build
 *   npx tsx tests/infra/ferretdb.ts start [--dir DIR] [--port PORT]
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildGoBinary } from './go-build.js';
import { isEntryPoint, removeOnExit, startProcess } from './proc.js';
import type { ManagedProcess } from './proc.js';

const START_TIMEOUT_MS = 30_000;
/** The test database's SQLite pragmas (see docs/store.md, FerretDB section). */
export const DEFAULT_SQLITE_PRAGMAS = '';
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
  /** SQLite pragmas, "name(value)" separated by commas or spaces (default: see the file's header). */
  sqlitePragmas?: string;
}

function sqlitePragmas(opts: StartFerretDbOptions): string {
  return opts.sqlitePragmas ?? process.env.FERRETDB_SQLITE_PRAGMAS ?? DEFAULT_SQLITE_PRAGMAS;
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

function buildBinary(): Promise<string> {
  return buildGoBinary({
    what: 'the FerretDB test server',
    binaryName: `ferretdb-switchboard-${sourceHash()}`,
    cwd: SRC_DIR,
    args: (dir) => ['build', '-trimpath', '-ldflags=-s -w', '-o', join(dir, 'ferretdb'), '.'],
    output: (dir) => join(dir, 'ferretdb'),
    // The build cache lives in the build's private directory, deleted once the binary is in place:
    // the cache keeps the binary and the module cache, not ~0.8 GB of compiled packages, and no
    // build can delete it under another.
    env: (dir) => ({ GOFLAGS: '-mod=mod', GOCACHE: join(dir, 'gocache') }),
  });
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
    [
      '-listen',
      `127.0.0.1:${port}`,
      '-dir',
      dir,
      '-log-level',
      opts.logLevel ?? 'warn',
      '-sqlite-pragmas',
      sqlitePragmas(opts),
    ],
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

if (isEntryPoint(import.meta.url)) {
  cli(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
