/**
 * Managed child processes for tests.
 *
 * Every process started with `startProcess` is kept in a process-wide registry:
 * `stopAll()` stops them all, and an `exit` hook SIGKILLs whatever is still
 * running, so a crashed or aborted test run never leaks JVMs or databases.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, realpathSync, rmSync } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface WaitForOutputOptions {
  /** Only match output produced after this mark (see `ManagedProcess.mark()`). */
  since?: number;
}

export interface ManagedProcess {
  name: string;
  child: ChildProcess;
  /** OS pid, or -1 if the process could not be spawned. */
  pid: number;
  /** All stdout+stderr captured so far (capped to the last ~2 MB). */
  output(): string;
  /**
   * Total number of output characters seen so far; pass it as `since` to
   * `waitForOutput` to only match output produced afterwards.
   */
  mark(): number;
  /**
   * Resolves with the match (RegExp) or the whole line containing the string
   * (string pattern) once the output contains it. Rejects, including the last
   * 3000 chars of output, on timeout or when the process exits first.
   */
  waitForOutput(
    pattern: RegExp | string,
    timeoutMs: number,
    opts?: WaitForOutputOptions,
  ): Promise<RegExpMatchArray | string>;
  exited: Promise<ExitInfo>;
  /** True until the process has exited (or failed to spawn). */
  isRunning(): boolean;
  /** Sends a signal (default SIGTERM) if the process is still running. */
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after timeoutMs (default 10000); resolves when exited. Idempotent. */
  stop(timeoutMs?: number): Promise<void>;
}

export interface StartProcessOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Output is also appended to this file (directories are created). */
  logFile?: string;
}

const OUTPUT_CAP = 2 * 1024 * 1024;
const TAIL_CHARS = 3000;
const verbose = process.env.SB_TEST_VERBOSE === '1';

interface Entry {
  proc: ManagedProcess;
  child: ChildProcess;
}

const registry = new Set<Entry>();
const exitCleanupPaths = new Set<string>();
let hooksInstalled = false;

/**
 * Removes `path` (recursively) when this process exits, if it still exists
 * then; for temp dirs of processes a crashed test could not stop. Returns a
 * function that cancels the registration (call it after removing the path).
 */
export function removeOnExit(path: string): () => void {
  installHooks();
  exitCleanupPaths.add(path);
  return () => {
    exitCleanupPaths.delete(path);
  };
}

function killAllSync(): void {
  for (const { child } of registry) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // 'exit' handlers must be synchronous: kill() and rmSync() are.
  const cleanup = (): void => {
    killAllSync();
    for (const p of exitCleanupPaths) {
      try {
        rmSync(p, { recursive: true, force: true });
      } catch {
        // best effort: the process is exiting, there is nobody left to tell
      }
    }
    exitCleanupPaths.clear();
  };
  process.on('exit', cleanup);
  // On a fatal signal, Node exits without emitting 'exit'. If nobody else
  // handles the signal, kill our children and re-raise it with the default
  // behaviour. If someone else listens (mocha, a CLI), let them decide; the
  // 'exit' hook still catches leftovers.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      if (process.listenerCount(sig) > 1) return;
      process.removeListener(sig, handler);
      cleanup();
      process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

function tail(s: string, n = TAIL_CHARS): string {
  return s.length > n ? '…' + s.slice(-n) : s;
}

function withoutGlobal(re: RegExp): RegExp {
  return re.global || re.sticky ? new RegExp(re.source, re.flags.replace(/[gy]/g, '')) : re;
}

export function startProcess(
  name: string,
  cmd: string,
  args: string[],
  opts: StartProcessOptions = {},
): ManagedProcess {
  installHooks();

  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...(opts.env ?? {}) })) {
    if (v !== undefined) env[k] = v;
  }

  let log: WriteStream | undefined;
  if (opts.logFile) {
    mkdirSync(dirname(opts.logFile), { recursive: true });
    log = createWriteStream(opts.logFile, { flags: 'a' });
    log.on('error', () => {
      log = undefined;
    });
    log.write(`\n=== ${new Date().toISOString()} start ${name}: ${cmd} ${args.join(' ')}\n`);
  }

  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env,
    detached: false,
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  let buf = '';
  let dropped = 0; // chars trimmed from the front of buf
  let exitInfo: ExitInfo | undefined;
  const listeners = new Set<() => void>();
  const partial: Record<'out' | 'err', string> = { out: '', err: '' };

  const notify = (): void => {
    for (const l of [...listeners]) l();
  };

  const append = (text: string): void => {
    buf += text;
    if (buf.length > OUTPUT_CAP + OUTPUT_CAP / 4) {
      const cut = buf.length - OUTPUT_CAP;
      buf = buf.slice(cut);
      dropped += cut;
    }
    log?.write(text);
    notify();
  };

  const echo = (stream: 'out' | 'err', text: string): void => {
    if (!verbose) return;
    const lines = (partial[stream] + text).split('\n');
    partial[stream] = lines.pop() ?? '';
    for (const line of lines) process.stderr.write(`[${name}] ${line}\n`);
  };

  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => {
    append(d);
    echo('out', d);
  });
  child.stderr?.on('data', (d: string) => {
    append(d);
    echo('err', d);
  });

  let resolveExited!: (e: ExitInfo) => void;
  const exited = new Promise<ExitInfo>((resolve) => {
    resolveExited = resolve;
  });

  const finish = (info: ExitInfo): void => {
    if (exitInfo) return;
    exitInfo = info;
    for (const s of ['out', 'err'] as const) {
      if (verbose && partial[s]) process.stderr.write(`[${name}] ${partial[s]}\n`);
      partial[s] = '';
    }
    const msg = `\n[${name} exited: code=${info.code} signal=${info.signal}]\n`;
    if (verbose) process.stderr.write(msg);
    log?.end(msg);
    log = undefined;
    registry.delete(entry);
    resolveExited(info);
    notify();
  };

  child.on('error', (err) => {
    append(`\n[${name}: spawn error: ${err.message}]\n`);
    if (child.pid === undefined) finish({ code: null, signal: null });
  });
  // 'close' fires once stdio is drained; fall back to 'exit' + grace period in
  // case a grandchild keeps the pipes open.
  child.on('close', (code, signal) => finish({ code, signal }));
  child.on('exit', (code, signal) => {
    setTimeout(() => finish({ code, signal }), 1000).unref();
  });

  const isRunning = (): boolean => exitInfo === undefined;

  const kill = (signal: NodeJS.Signals = 'SIGTERM'): void => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    try {
      child.kill(signal);
    } catch {
      // exited meanwhile: nothing left to signal
    }
  };

  let stopping: Promise<void> | undefined;
  const stop = (timeoutMs = 10_000): Promise<void> => {
    if (!stopping) {
      stopping = (async () => {
        if (!isRunning()) return;
        kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([
          exited.then(() => false),
          new Promise<boolean>((r) => {
            timer = setTimeout(() => r(true), timeoutMs);
          }),
        ]);
        clearTimeout(timer);
        if (timedOut) {
          kill('SIGKILL');
          await Promise.race([exited, new Promise((r) => setTimeout(r, 5000).unref())]);
        }
      })();
    }
    return stopping;
  };

  const waitForOutput = (
    pattern: RegExp | string,
    timeoutMs: number,
    wopts: WaitForOutputOptions = {},
  ): Promise<RegExpMatchArray | string> => {
    const re = typeof pattern === 'string' ? undefined : withoutGlobal(pattern);
    const since = wopts.since ?? 0;
    const check = (): RegExpMatchArray | string | undefined => {
      const text = since > dropped ? buf.slice(since - dropped) : buf;
      if (re) return text.match(re) ?? undefined;
      const idx = text.indexOf(pattern as string);
      if (idx < 0) return undefined;
      const start = text.lastIndexOf('\n', idx) + 1;
      const end = text.indexOf('\n', idx);
      return text.slice(start, end < 0 ? undefined : end);
    };
    return new Promise((resolve, reject) => {
      const first = check();
      if (first !== undefined) {
        resolve(first);
        return;
      }
      const describe = typeof pattern === 'string' ? JSON.stringify(pattern) : String(pattern);
      const done = (): void => {
        listeners.delete(listener);
        clearTimeout(timer);
      };
      const listener = (): void => {
        const m = check();
        if (m !== undefined) {
          done();
          resolve(m);
        } else if (exitInfo) {
          done();
          reject(
            new Error(
              `${name} exited (code=${exitInfo.code} signal=${exitInfo.signal}) before printing ${describe}; output tail:\n${tail(buf)}`,
            ),
          );
        }
      };
      listeners.add(listener);
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `timed out after ${timeoutMs}ms waiting for ${describe} from ${name}; output tail:\n${tail(buf)}`,
          ),
        );
      }, timeoutMs);
      listener(); // in case it already exited
    });
  };

  const proc: ManagedProcess = {
    name,
    child,
    pid: child.pid ?? -1,
    output: () => buf,
    mark: () => dropped + buf.length,
    waitForOutput,
    exited,
    isRunning,
    kill,
    stop,
  };
  const entry: Entry = { proc, child };
  registry.add(entry);
  return proc;
}

/** Stops every process started with `startProcess` that is still running. */
export async function stopAll(timeoutMs = 10_000): Promise<void> {
  await Promise.all([...registry].map(({ proc }) => proc.stop(timeoutMs)));
}

/** A currently free TCP port on 127.0.0.1 (chosen by the OS). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('could not determine a free port'))));
    });
  });
}

function tryListen(port: number): Promise<import('node:net').Server | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(undefined));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(srv));
  });
}

/**
 * `count` distinct free ports on 127.0.0.1 taken from [20000, 32000), below
 * Linux's ephemeral range (32768+), so that outgoing connections made by other
 * processes cannot grab them between now and the moment a server binds them.
 */
export async function pickPorts(count: number, low = 20_000, high = 32_000): Promise<number[]> {
  const held: import('node:net').Server[] = [];
  const ports: number[] = [];
  try {
    for (let attempts = 0; ports.length < count; attempts++) {
      if (attempts > 500) throw new Error(`could not find ${count} free ports in [${low}, ${high})`);
      const port = low + Math.floor(Math.random() * (high - low));
      // Free now is not free later: a port handed out a moment ago to a process still starting
      // (a fault stack's backends and its Hazelcast members pick theirs at the same time) is not
      // handed out again in this process.
      if (ports.includes(port) || handedOut.has(port)) continue;
      const srv = await tryListen(port);
      if (srv) {
        held.push(srv);
        ports.push(port);
      }
    }
    for (const port of ports) handedOut.add(port);
    // Bounded: the oldest ones are long bound by now (or released), and may be handed out again.
    for (const port of handedOut) {
      if (handedOut.size <= HANDED_OUT_KEPT) break;
      handedOut.delete(port);
    }
    return ports;
  } finally {
    await Promise.all(held.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

/** Ports pickPorts handed out lately, oldest first. */
const handedOut = new Set<number>();
const HANDED_OUT_KEPT = 2_000;

/**
 * Polls `fn` until it returns a truthy value, which is returned. Throws
 * `timed out after Xms waiting for <what>` otherwise (the last error thrown by
 * `fn`, if any, is appended).
 */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (let first = true; ; first = false) {
    const remaining = deadline - Date.now();
    if (remaining <= 0 && !first) break;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = Symbol('timeout');
      const v = await Promise.race([
        Promise.resolve().then(fn),
        new Promise<typeof timeout>((r) => {
          timer = setTimeout(() => r(timeout), Math.max(remaining, 0));
        }),
      ]);
      if (v === timeout) break;
      if (v) return v as T;
    } catch (err) {
      lastErr = err;
    } finally {
      clearTimeout(timer);
    }
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, Math.max(0, deadline - Date.now()))));
  }
  const suffix = lastErr
    ? ` (last error: ${lastErr instanceof Error ? lastErr.message : String(lastErr)})`
    : '';
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${suffix}`);
}

/** True when the module with this `import.meta.url` is the script node was started with. */
export function isEntryPoint(moduleUrl: string): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return moduleUrl === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}
