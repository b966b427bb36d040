/**
 * Shared pieces of the real-time benchmark: load-generator child processes, server processes with
 * a raised file-descriptor limit, and CPU / RSS readings of server processes from /proc.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type ManagedProcess, startProcess } from '../../infra/proc.js';
import type { Command, Reply } from './protocol.js';

export const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const loadgenScript = fileURLToPath(new URL('./loadgen.ts', import.meta.url));

/** `ulimit -n` is raised for every child: 10,000 connections need more than the default 1,024. */
function withFdLimit(cmd: string, args: string[]): [string, string[]] {
  return [
    'bash',
    ['-c', 'ulimit -n 65536 2>/dev/null || ulimit -n 20000 2>/dev/null; exec "$@"', '_', cmd, ...args],
  ];
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** One load-generator process; `call` sends a command and resolves with its reply. */
export class LoadGen {
  private queue: Promise<unknown> = Promise.resolve();
  private constructor(private readonly child: ChildProcess) {}

  static start(): LoadGen {
    const [cmd, args] = withFdLimit(process.execPath, ['--import', 'tsx', loadgenScript]);
    const child = spawn(cmd, args, { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.add(child);
    child.on('exit', () => children.delete(child));
    return new LoadGen(child);
  }

  call<R extends Reply>(command: Command, timeoutMs = 120_000): Promise<R> {
    const run = (): Promise<R> =>
      new Promise<R>((resolve, reject) => {
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`load generator: ${command.cmd} took over ${timeoutMs} ms`));
        }, timeoutMs);
        const onMessage = (r: Reply): void => {
          cleanup();
          if ('error' in r) reject(new Error(`load generator: ${r.error}`));
          else resolve(r as R);
        };
        const onExit = (): void => {
          cleanup();
          reject(new Error(`load generator exited during ${command.cmd}`));
        };
        const cleanup = (): void => {
          clearTimeout(timer);
          this.child.off('message', onMessage);
          this.child.off('exit', onExit);
        };
        this.child.on('message', onMessage);
        this.child.once('exit', onExit);
        this.child.send(command);
      });
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => {}); // the caller gets the failure; the next command still runs
    return next;
  }

  async stop(): Promise<void> {
    await this.call({ cmd: 'close' }, 10_000).catch(() => {}); // gone already: disconnect anyway
    this.child.disconnect();
    await new Promise<void>((r) => {
      if (this.child.exitCode !== null) return r();
      const t = setTimeout(() => {
        this.child.kill('SIGKILL');
        r();
      }, 5_000);
      this.child.once('exit', () => {
        clearTimeout(t);
        r();
      });
    });
  }
}

/** A server process (registered for cleanup by proc.ts), its fd limit raised. */
export function startServer(
  name: string,
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): ManagedProcess {
  const [c, a] = withFdLimit(cmd, args);
  return startProcess(name, c, a, { cwd: repoRoot, env });
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** User + system CPU time of a process so far, in microseconds. */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at ") ".
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / CLK_TCK;
}

export function totalCpuMicros(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + cpuMicros(pid), 0);
}

/** Resident set size of a process, in bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status);
  return kb ? Number(kb[1]) * 1024 : NaN;
}

/** The 1-minute load average, to say in the results how busy the machine was. */
export function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
