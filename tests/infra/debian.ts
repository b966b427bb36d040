/**
 * Installs the Debian packages the tests and benchmarks need (HAProxy, Chromium, Redis) when
 * their binaries are missing, so a fresh machine provisions itself. Downloaded .deb files are
 * kept under `<cacheDir>/apt/archives`, so a re-install does not fetch them again.
 *
 *   node --import tsx tests/infra/debian.ts install haproxy chromium
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { acquireLock, cachePath } from './cache.js';
import { isEntryPoint, startProcess } from './proc.js';

/** The packages this project installs, and the binary that proves each is there. */
export const DEBIAN_PACKAGES = {
  haproxy: '/usr/sbin/haproxy',
  chromium: '/usr/bin/chromium',
  'redis-server': '/usr/bin/redis-server',
  // The local Kubernetes of tests/infra/kube (container runtime, CNI, kube-proxy and
  // NetworkPolicy needs, and debootstrap for the images' root filesystems).
  containerd: '/usr/bin/containerd',
  runc: '/usr/sbin/runc',
  'containernetworking-plugins': '/usr/lib/cni/bridge',
  iptables: '/usr/sbin/iptables',
  conntrack: '/usr/sbin/conntrack',
  ipset: '/usr/sbin/ipset',
  debootstrap: '/usr/sbin/debootstrap',
  curl: '/usr/bin/curl',
} as const;

export type DebianPackage = keyof typeof DEBIAN_PACKAGES;

const APT_TIMEOUT_MS = 10 * 60_000;

function missing(packages: readonly DebianPackage[]): DebianPackage[] {
  return packages.filter((p) => !existsSync(DEBIAN_PACKAGES[p]));
}

async function apt(args: string[]): Promise<void> {
  const proc = startProcess(`apt-get ${args[0]}`, 'apt-get', args, {
    env: { DEBIAN_FRONTEND: 'noninteractive' },
  });
  const timer = setTimeout(() => proc.kill('SIGKILL'), APT_TIMEOUT_MS);
  const { code, signal } = await proc.exited.finally(() => clearTimeout(timer));
  if (code !== 0) {
    throw new Error(
      `apt-get ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${proc.output().slice(-2000)}`,
    );
  }
}

/** Installs whichever of `packages` is missing; returns the binaries' paths. */
export async function ensureDebianPackages(packages: readonly DebianPackage[]): Promise<string[]> {
  const paths = packages.map((p) => DEBIAN_PACKAGES[p]);
  if (missing(packages).length === 0) return paths;
  const release = await acquireLock(
    join(cachePath('apt'), '.lock'),
    () => missing(packages).length === 0,
    APT_TIMEOUT_MS,
    APT_TIMEOUT_MS,
  );
  try {
    const todo = missing(packages);
    if (todo.length > 0) {
      const archives = cachePath('apt', 'archives', 'partial').replace(/\/partial$/, '');
      await apt(['update', '-qq']);
      await apt([
        'install',
        '-y',
        '-qq',
        '--no-install-recommends',
        '-o',
        `Dir::Cache::archives=${archives}`,
        ...todo,
      ]);
      const still = missing(todo);
      if (still.length > 0) {
        throw new Error(
          `apt-get installed ${todo.join(', ')} but ${still.map((p) => DEBIAN_PACKAGES[p]).join(', ')} is missing`,
        );
      }
    }
  } finally {
    await release?.();
  }
  return paths;
}

if (isEntryPoint(import.meta.url)) {
  const [command, ...names] = process.argv.slice(2);
  const unknown = names.filter((n) => !(n in DEBIAN_PACKAGES));
  if (command !== 'install' || names.length === 0 || unknown.length > 0) {
    process.stderr.write(
      `usage: debian.ts install <${Object.keys(DEBIAN_PACKAGES).join('|')}>…` +
        (unknown.length > 0 ? ` (unknown: ${unknown.join(', ')})` : '') +
        '\n',
    );
    process.exit(2);
  }
  const t0 = Date.now();
  ensureDebianPackages(names as DebianPackage[]).then(
    (paths) => console.log(JSON.stringify({ paths, ms: Date.now() - t0 })),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : String(err));
      process.exit(1);
    },
  );
}
