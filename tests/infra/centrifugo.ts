/**
 * Centrifugo v6.9.1 (the real-time messaging server) for the benchmark, built once from the Go
 * module proxy into the shared cache (`<cacheDir>/bin/centrifugo-6.9.1`; module cache under
 * `<cacheDir>/go/mod`, build cache private to the build and deleted after it).
 *
 * CLI:
 *   npx tsx tests/infra/centrifugo.ts build
 */
import { join } from 'node:path';
import { buildGoBinary } from './go-build.js';
import { isEntryPoint } from './proc.js';

export const CENTRIFUGO_VERSION = 'v6.9.1';
const MODULE = 'github.com/centrifugal/centrifugo/v6';

let binaryPromise: Promise<string> | undefined;

/** Path of the centrifugo binary, building it with `go install` if needed; safe to call concurrently. */
export function ensureCentrifugo(): Promise<string> {
  binaryPromise ??= build().catch((err: unknown) => {
    binaryPromise = undefined;
    throw err;
  });
  return binaryPromise;
}

function build(): Promise<string> {
  // The release builds set the version with -X (.goreleaser.yml); without it the binary says 0.0.0.
  const ldflags = `-s -w -X ${MODULE}/internal/build.Version=${CENTRIFUGO_VERSION.slice(1)}`;
  return buildGoBinary({
    what: `Centrifugo ${CENTRIFUGO_VERSION}`,
    binaryName: `centrifugo-${CENTRIFUGO_VERSION.slice(1)}`,
    args: () => ['install', '-trimpath', `-ldflags=${ldflags}`, `${MODULE}@${CENTRIFUGO_VERSION}`],
    // `go install` of a /vN module path names the binary after the module's last element
    // that is not a major version suffix: centrifugo.
    output: (dir) => join(dir, 'centrifugo'),
    // Centrifugo has several hundred packages (cloud SDKs among them): more than the default
    // 10 minutes on 2 busy cores.
    timeoutMs: 30 * 60_000,
    // A build cache private to this build, deleted with its directory (see ferretdb.ts).
    env: (dir) => ({ GOBIN: dir, GOCACHE: join(dir, 'gocache') }),
  });
}

if (isEntryPoint(import.meta.url)) {
  const [cmd] = process.argv.slice(2);
  if (cmd === 'build') {
    const t0 = Date.now();
    ensureCentrifugo().then(
      (bin) => console.log(JSON.stringify({ bin, ms: Date.now() - t0 })),
      (err: unknown) => {
        console.error(err instanceof Error ? err.message : err);
        process.exit(1);
      },
    );
  } else {
    console.error('usage: tsx tests/infra/centrifugo.ts build');
    process.exitCode = 2;
  }
}
