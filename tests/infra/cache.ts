/**
 * Shared on-disk cache for test infrastructure (Hazelcast jar, Vert.x jars, Maven repo,
 * Go module/build caches, FerretDB binary).
 *
 * Location: $SWITCHBOARD_CACHE, or ~/.cache/switchboard by default.
 */
import { mkdirSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export const cacheDir: string = resolve(
  process.env.SWITCHBOARD_CACHE ?? join(homedir(), '.cache', 'switchboard'),
);

/** Creates `dir` (recursively) if missing and returns it. */
export function ensureDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Returns `<cacheDir>/<parts...>`, creating the directory on demand. */
export function cachePath(...parts: string[]): string {
  return ensureDir(join(cacheDir, ...parts));
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Cross-process lock: a directory created atomically with mkdir, holding the
 * owner's pid. Stale locks (dead owner, or older than `staleMs`) are broken.
 * Returns a release function, or undefined if `done()` became true while waiting.
 */
export async function acquireLock(
  lockDir: string,
  done: () => boolean,
  timeoutMs: number,
  staleMs: number,
): Promise<(() => Promise<void>) | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (done()) return undefined;
    try {
      await mkdir(lockDir);
      await writeFile(join(lockDir, 'owner'), String(process.pid));
      return () => rm(lockDir, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    try {
      const owner = Number((await readFile(join(lockDir, 'owner'), 'utf8')).trim());
      const age = Date.now() - (await stat(lockDir)).mtimeMs;
      if ((owner > 0 && !pidAlive(owner)) || age > staleMs) {
        await rm(lockDir, { recursive: true, force: true });
        continue;
      }
    } catch {
      // owner file not written yet, or lock just released
      const age = await stat(lockDir).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age > 10_000) await rm(lockDir, { recursive: true, force: true });
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs}ms waiting for lock ${lockDir}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
