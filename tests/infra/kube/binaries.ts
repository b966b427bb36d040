/**
 * The programs of the local Kubernetes, built once from the Go module proxy into
 * `<cacheDir>/bin` (see ../go-build.ts): Kubernetes v1.34.2 (apiserver, controller-manager,
 * scheduler, kubelet, kube-proxy, kubectl), etcd 3.6.5, CoreDNS 1.12.4, metrics-server 0.8.0,
 * kube-router 2.1.0 (NetworkPolicy only) and the pause program of the sandboxes.
 *
 * The Go build cache of these builds is a directory of its own (`go/build-kube`, several GB),
 * dropped once every program is there: the binaries are what stays cached.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync, chmodSync, renameSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireLock, cacheDir, ensureDir } from '../cache.js';
import { buildGoBinary, goBin, isExecutable } from '../go-build.js';

export const KUBERNETES_VERSION = 'v1.34.2';
export const ETCD_VERSION = 'v3.6.5';
export const COREDNS_VERSION = 'v1.12.4';
export const METRICS_SERVER_VERSION = 'v0.8.0';
export const KUBE_ROUTER_VERSION = 'v2.1.0';
/** Prometheus 3.x: the Go module's v0.316.0. */
export const PROMETHEUS_VERSION = 'v0.316.0';

const HERE = dirname(fileURLToPath(import.meta.url));
const KUBE_GOCACHE = join(cacheDir, 'go', 'build-kube');
const GO_TIMEOUT_MS = 25 * 60_000;
export const KUBE_COMMANDS = [
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubelet',
  'kube-proxy',
  'kubectl',
] as const;

export interface KubeBinaries {
  /** Directory holding KUBE_COMMANDS. */
  kubernetes: string;
  etcd: string;
  coredns: string;
  metricsServer: string;
  kubeRouter: string;
  prometheus: string;
  /** Our custom.metrics.k8s.io adapter (./metrics-adapter). */
  metricsAdapter: string;
  /** Static pause program for the sandbox image. */
  pause: string;
}

function goEnv(): Record<string, string> {
  return {
    GOMODCACHE: join(cacheDir, 'go', 'mod'),
    GOCACHE: KUBE_GOCACHE,
    GOTOOLCHAIN: 'local',
    GOWORK: 'off',
    GOFLAGS: '-mod=mod',
    CGO_ENABLED: '0',
  };
}

function runGo(args: string[], cwd: string): string {
  return execFileSync(goBin(), args, {
    cwd,
    env: { ...process.env, ...goEnv() },
    encoding: 'utf8',
    timeout: 5 * 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
}

/** Directory of the k8s.io/kubernetes module in the module cache (read-only). */
function kubernetesModuleDir(): string {
  const info = JSON.parse(
    runGo(['mod', 'download', '-json', `k8s.io/kubernetes@${KUBERNETES_VERSION}`], cacheDir),
  ) as {
    Dir?: string;
    Error?: string;
  };
  if (!info.Dir)
    throw new Error(`go mod download k8s.io/kubernetes@${KUBERNETES_VERSION}: ${info.Error ?? 'no Dir'}`);
  return info.Dir;
}

/**
 * A writable copy of k8s.io/kubernetes that builds on its own: the module zip has a go.work and
 * `replace k8s.io/X => ./staging/src/k8s.io/X` lines, but no staging/ (nested modules are left
 * out of module zips), so the replaces point at the published k8s.io/X v0.34.N instead.
 */
function kubernetesSource(into: string): string {
  const src = join(into, 'kubernetes');
  cpSync(kubernetesModuleDir(), src, { recursive: true });
  execFileSync('chmod', ['-R', 'u+w', src]);
  for (const f of ['go.work', 'go.work.sum'])
    if (existsSync(join(src, f))) execFileSync('rm', ['-f', join(src, f)]);
  const staging = `v0${KUBERNETES_VERSION.slice(2)}`;
  const gomod = readFileSync(join(src, 'go.mod'), 'utf8').replace(
    /(k8s\.io\/[\w.-]+) => \.\/staging\/src\/k8s\.io\/[\w.-]+/g,
    `$1 => $1 ${staging}`,
  );
  writeFileSync(join(src, 'go.mod'), gomod);
  return src;
}

function versionLdflags(): string {
  const [major, minor] = KUBERNETES_VERSION.slice(1).split('.');
  const vars: Record<string, string> = {
    gitVersion: KUBERNETES_VERSION,
    gitMajor: major!,
    gitMinor: minor!,
    gitTreeState: 'clean',
    gitCommit: '0000000000000000000000000000000000000000',
    buildDate: '2025-11-11T00:00:00Z',
  };
  const pkgs = ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'];
  return ['-s', '-w', ...pkgs.flatMap((p) => Object.entries(vars).map(([k, v]) => `-X ${p}.${k}=${v}`))].join(
    ' ',
  );
}

async function buildKubernetes(): Promise<string> {
  const name = `kubernetes-${KUBERNETES_VERSION}`;
  const out = join(cacheDir, 'bin', name);
  if (KUBE_COMMANDS.every((c) => isExecutable(join(out, c)))) return out;
  const work = mkdtempSync(join(ensureDir(join(cacheDir, 'bin')), '.src-kubernetes-'));
  try {
    const src = kubernetesSource(work);
    return await buildGoBinary({
      what: `Kubernetes ${KUBERNETES_VERSION} (${KUBE_COMMANDS.join(', ')})`,
      binaryName: name,
      cwd: src,
      timeoutMs: GO_TIMEOUT_MS,
      // One go command for all six: they share most packages.
      args: (dir) => [
        'build',
        '-trimpath',
        `-ldflags=${versionLdflags()}`,
        '-o',
        join(dir, 'out') + '/',
        ...KUBE_COMMANDS.map((c) => `./cmd/${c}`),
      ],
      output: (dir) => join(dir, 'out'),
      env: () => goEnv(),
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function sourceHash(dir: string, files: string[]): string {
  const h = createHash('sha256');
  for (const f of files)
    h.update(f)
      .update('\0')
      .update(readFileSync(join(dir, f)))
      .update('\0');
  return h.digest('hex').slice(0, 12);
}

/** A small main program of ours (./etcd, ./coredns) with its go.mod/go.sum. */
function buildOwnProgram(what: string, sub: string, version: string): Promise<string> {
  const dir = join(HERE, sub);
  return buildGoBinary({
    what,
    binaryName: `${sub}-${version.slice(1)}-${sourceHash(dir, ['main.go', 'go.mod', 'go.sum'])}`,
    cwd: dir,
    timeoutMs: GO_TIMEOUT_MS,
    args: (out) => ['build', '-trimpath', '-ldflags=-s -w', '-o', join(out, sub), '.'],
    output: (out) => join(out, sub),
    env: () => goEnv(),
  });
}

function goInstall(
  what: string,
  pkg: string,
  version: string,
  command: string,
  tags: string[] = [],
): Promise<string> {
  return buildGoBinary({
    what,
    binaryName: `${command}-${version.slice(1)}${tags.length ? `-${tags.join('-')}` : ''}`,
    timeoutMs: GO_TIMEOUT_MS,
    args: () => [
      'install',
      '-trimpath',
      '-ldflags=-s -w',
      ...(tags.length ? [`-tags=${tags.join(',')}`] : []),
      `${pkg}@${version}`,
    ],
    output: (dir) => join(dir, command),
    env: (dir) => ({ ...goEnv(), GOBIN: dir }),
  });
}

/** The pause program every pod sandbox runs, compiled statically from the Kubernetes module. */
async function buildPause(): Promise<string> {
  const out = join(cacheDir, 'bin', `pause-${KUBERNETES_VERSION}`);
  if (isExecutable(out)) return out;
  const release = await acquireLock(`${out}.lock`, () => isExecutable(out), 120_000, 120_000);
  if (!release) return out;
  try {
    const tmp = `${out}.tmp`;
    execFileSync(
      'gcc',
      ['-Os', '-static', '-o', tmp, join(kubernetesModuleDir(), 'build', 'pause', 'linux', 'pause.c')],
      { timeout: 60_000, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    chmodSync(tmp, 0o755);
    renameSync(tmp, out);
    return out;
  } finally {
    await release();
  }
}

let binariesPromise: Promise<KubeBinaries> | undefined;

/** Every program of the local cluster, building what is missing (one after the other: 2 cores). */
export function ensureKubeBinaries(log: (line: string) => void = () => undefined): Promise<KubeBinaries> {
  binariesPromise ??= (async () => {
    const step = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
      const t0 = Date.now();
      const r = await f();
      log(`${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      return r;
    };
    const kubernetes = await step('kubernetes', buildKubernetes);
    const etcd = await step('etcd', () => buildOwnProgram('etcd', 'etcd', ETCD_VERSION));
    const coredns = await step('coredns', () => buildOwnProgram('CoreDNS', 'coredns', COREDNS_VERSION));
    const metricsServer = await step('metrics-server', () =>
      goInstall(
        'metrics-server',
        'sigs.k8s.io/metrics-server/cmd/metrics-server',
        METRICS_SERVER_VERSION,
        'metrics-server',
      ),
    );
    const kubeRouter = await step('kube-router', () =>
      goInstall(
        'kube-router',
        'github.com/cloudnativelabs/kube-router/v2/cmd/kube-router',
        KUBE_ROUTER_VERSION,
        'kube-router',
      ),
    );
    const prometheus = await step('prometheus', () =>
      // Only the Kubernetes service discovery: the others pull in every cloud SDK.
      goInstall(
        'Prometheus',
        'github.com/prometheus/prometheus/cmd/prometheus',
        PROMETHEUS_VERSION,
        'prometheus',
        ['remove_all_sd', 'enable_kubernetes_sd'],
      ),
    );
    const metricsAdapter = await step('metrics-adapter', () =>
      buildOwnProgram('the custom metrics adapter', 'metrics-adapter', 'v0.1.0'),
    );
    const pause = await step('pause', buildPause);
    // Everything is built: the multi-GB build cache has done its job.
    await rm(KUBE_GOCACHE, { recursive: true, force: true });
    return { kubernetes, etcd, coredns, metricsServer, kubeRouter, prometheus, metricsAdapter, pause };
  })().catch((err: unknown) => {
    binariesPromise = undefined;
    throw err;
  });
  return binariesPromise;
}
