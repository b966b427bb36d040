/**
 * grpcurl v1.9.3 for tests, built once from the Go module proxy into the shared cache
 * (`<cacheDir>/bin/grpcurl-1.9.3`; module and build caches under `<cacheDir>/go`).
 *
 * CLI:
 *   npx tsx tests/infra/grpcurl.ts build
 */
import { accessSync, constants, realpathSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { acquireLock, cacheDir, ensureDir } from './cache.js';
import { goBin } from './ferretdb.js';
import { startProcess } from './proc.js';

export const GRPCURL_VERSION = 'v1.9.3';
const MODULE = 'github.com/fullstorydev/grpcurl/cmd/grpcurl';
const BUILD_TIMEOUT_MS = 10 * 60_000;

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

let binaryPromise: Promise<string> | undefined;

/** Path of the grpcurl binary, building it with `go install` if needed; safe to call concurrently. */
export function ensureGrpcurl(): Promise<string> {
  binaryPromise ??= build().catch((err: unknown) => {
    binaryPromise = undefined;
    throw err;
  });
  return binaryPromise;
}

async function build(): Promise<string> {
  const binDir = ensureDir(join(cacheDir, 'bin'));
  const out = join(binDir, `grpcurl-${GRPCURL_VERSION.slice(1)}`);
  if (isExecutable(out)) return out;
  const release = await acquireLock(
    `${out}.lock`,
    () => isExecutable(out),
    BUILD_TIMEOUT_MS + 60_000,
    BUILD_TIMEOUT_MS + 30_000,
  );
  if (!release) return out;
  // `go install` names its output after the command: build into a private GOBIN, then move.
  const tmpBin = ensureDir(join(binDir, `.grpcurl-build-${process.pid}`));
  try {
    if (isExecutable(out)) return out;
    const goDir = ensureDir(join(cacheDir, 'go'));
    const args = ['install', '-trimpath', '-ldflags=-s -w', `${MODULE}@${GRPCURL_VERSION}`];
    const go = startProcess('go-install-grpcurl', goBin(), args, {
      cwd: goDir,
      env: {
        GOBIN: tmpBin,
        GOMODCACHE: join(goDir, 'mod'),
        GOCACHE: join(goDir, 'build'),
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
    const built = join(tmpBin, 'grpcurl');
    if (result === 'timeout') {
      await go.stop(5000);
      throw new Error(`building grpcurl timed out after ${BUILD_TIMEOUT_MS / 1000}s (go ${args.join(' ')})`);
    }
    if (result.code !== 0 || !isExecutable(built)) {
      throw new Error(
        `could not build grpcurl (exit code ${result.code}; is the Go module proxy reachable, or ` +
          `${join(goDir, 'mod')} populated?). Command: go ${args.join(' ')}\n${go.output().slice(-3000)}`,
      );
    }
    await rename(built, out);
    return out;
  } finally {
    await rm(tmpBin, { recursive: true, force: true });
    await release();
  }
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
  const [cmd] = process.argv.slice(2);
  if (cmd === 'build') {
    const t0 = Date.now();
    ensureGrpcurl().then(
      (bin) => console.log(JSON.stringify({ bin, ms: Date.now() - t0 })),
      (err: unknown) => {
        console.error(err instanceof Error ? err.message : err);
        process.exit(1);
      },
    );
  } else {
    console.error('usage: tsx tests/infra/grpcurl.ts build');
    process.exitCode = 2;
  }
}
