/**
 * Builds Go programs for tests into the shared cache, once per machine: a cross-process lock,
 * a private output directory, a bounded build, and an atomic rename into place. Module and
 * build caches live under `<cacheDir>/go`, so a new machine rebuilds from the Go module proxy.
 */
import { accessSync, constants, existsSync, mkdtempSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireLock, cacheDir, ensureDir } from './cache.js';
import { startProcess } from './proc.js';

const BUILD_TIMEOUT_MS = 10 * 60_000;

export function goBin(): string {
  const fromRoot = process.env.GOROOT ? join(process.env.GOROOT, 'bin', 'go') : undefined;
  if (fromRoot && existsSync(fromRoot)) return fromRoot;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'go'))) return join(dir, 'go');
  }
  if (existsSync('/usr/local/go/bin/go')) return '/usr/local/go/bin/go';
  return 'go';
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface GoBuild {
  /** What is built, for messages (e.g. "grpcurl"). */
  what: string;
  /** File name of the result under `<cacheDir>/bin`. */
  binaryName: string;
  /** Working directory of the go command (default: `<cacheDir>/go`). */
  cwd?: string;
  /** go arguments; they must leave the program at `output(dir)` inside the private `dir`. */
  args(dir: string): string[];
  output(dir: string): string;
  /** Bound of the go command (default 10 minutes; Kubernetes takes longer on 2 busy cores). */
  timeoutMs?: number;
  /** Extra environment (e.g. GOBIN, GOFLAGS, or a GOCACHE of its own). */
  env?(dir: string): Record<string, string>;
}

/** Path of the cached binary, building it first when it is missing. Safe to call concurrently. */
export async function buildGoBinary(build: GoBuild): Promise<string> {
  const binDir = ensureDir(join(cacheDir, 'bin'));
  const out = join(binDir, build.binaryName);
  if (isExecutable(out)) return out;
  const timeoutMs = build.timeoutMs ?? BUILD_TIMEOUT_MS;
  const release = await acquireLock(
    `${out}.lock`,
    () => isExecutable(out),
    timeoutMs + 60_000,
    timeoutMs + 30_000,
  );
  if (!release) return out;
  const dir = mkdtempSync(join(binDir, `.build-${build.binaryName}-`));
  try {
    if (isExecutable(out)) return out;
    const goDir = ensureDir(join(cacheDir, 'go'));
    const cwd = build.cwd ?? goDir;
    const args = build.args(dir);
    const command = `cd ${cwd} && go ${args.join(' ')}`;
    const go = startProcess(`go-build-${build.binaryName}`, goBin(), args, {
      cwd,
      env: {
        GOMODCACHE: join(goDir, 'mod'),
        GOCACHE: join(goDir, 'build'),
        GOWORK: 'off',
        GOTOOLCHAIN: 'local',
        CGO_ENABLED: '0',
        ...build.env?.(dir),
      },
    });
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      go.exited,
      new Promise<'timeout'>((r) => {
        timer = setTimeout(() => r('timeout'), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (result === 'timeout') {
      await go.stop(5000);
      throw new Error(
        `building ${build.what} timed out after ${timeoutMs / 1000}s (${command}); output:\n${go.output().slice(-3000)}`,
      );
    }
    const built = build.output(dir);
    if (result.code !== 0 || !isExecutable(built)) {
      throw new Error(
        `could not build ${build.what} (exit code ${result.code}, signal ${result.signal}; ` +
          `is the Go module proxy reachable, or ${join(goDir, 'mod')} populated?). ` +
          `Command: ${command}\n${go.output().slice(-3000)}`,
      );
    }
    await rename(built, out);
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
    await release();
  }
}
