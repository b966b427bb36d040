/**
 * grpcurl v1.9.3 for tests, built once from the Go module proxy into the shared cache
 * (`<cacheDir>/bin/grpcurl-1.9.3`; module and build caches under `<cacheDir>/go`).
 *
 * CLI:
 *   npx tsx tests/infra/grpcurl.ts build
 */
import { join } from 'node:path';
import { buildGoBinary } from './go-build.js';
import { isEntryPoint } from './proc.js';

export const GRPCURL_VERSION = 'v1.9.3';
const MODULE = 'github.com/fullstorydev/grpcurl/cmd/grpcurl';

let binaryPromise: Promise<string> | undefined;

/** Path of the grpcurl binary, building it with `go install` if needed; safe to call concurrently. */
export function ensureGrpcurl(): Promise<string> {
  binaryPromise ??= build().catch((err: unknown) => {
    binaryPromise = undefined;
    throw err;
  });
  return binaryPromise;
}

function build(): Promise<string> {
  // `go install` names its output after the command: install into the private dir, then move.
  return buildGoBinary({
    what: 'grpcurl',
    binaryName: `grpcurl-${GRPCURL_VERSION.slice(1)}`,
    args: () => ['install', '-trimpath', '-ldflags=-s -w', `${MODULE}@${GRPCURL_VERSION}`],
    output: (dir) => join(dir, 'grpcurl'),
    // A build cache private to this build, deleted with its directory (see ferretdb.ts).
    env: (dir) => ({ GOBIN: dir, GOCACHE: join(dir, 'gocache') }),
  });
}

if (isEntryPoint(import.meta.url)) {
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
