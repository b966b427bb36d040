/**
 * The local one-node Kubernetes (see cluster.sh): provisioning of everything it runs, start,
 * stop, and kubectl / commands inside its network namespace.
 *
 *   node --import tsx tests/infra/kube/cluster.ts provision   # build and cache, no cluster
 *   node --import tsx tests/infra/kube/cluster.ts up          # provision + start the cluster
 *   node --import tsx tests/infra/kube/cluster.ts down
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDebianPackages } from '../debian.js';
import type { DebianPackage } from '../debian.js';
import { isEntryPoint } from '../proc.js';
import { ensureKubeBinaries, KUBERNETES_VERSION } from './binaries.js';
import type { KubeBinaries } from './binaries.js';
import { ensureImages } from './images.js';

const HERE = dirname(fileURLToPath(import.meta.url));
export const CLUSTER_SCRIPT = join(HERE, 'cluster.sh');
export const STATE_DIR = '/var/lib/switchboard-k8s';
export const NETNS = 'switchboard-k8s';
/** kubectl for the cluster (written by `cluster.sh up`). */
export const KUBECTL = join(STATE_DIR, 'kubectl');
/** Runs its arguments in the cluster's network with the cluster's DNS. */
export const IN_CLUSTER_NET = join(STATE_DIR, 'in-cluster-net');

export const HOST_PACKAGES: DebianPackage[] = [
  'containerd',
  'runc',
  'containernetworking-plugins',
  'iptables',
  'conntrack',
  'ipset',
  'debootstrap',
  'curl',
];

/** Why this machine cannot run the cluster, or undefined when it can. */
export function missingPrerequisite(): string | undefined {
  if (process.platform !== 'linux') return 'Linux';
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    return 'root (network namespaces, mounts, cgroups)';
  if (!existsSync('/sys/fs/cgroup/memory') && !existsSync('/sys/fs/cgroup/cgroup.controllers'))
    return 'cgroups mounted at /sys/fs/cgroup';
  if (!existsSync('/proc/sys/net/bridge')) return 'the br_netfilter kernel feature';
  return undefined;
}

export interface Provisioned {
  bins: KubeBinaries;
  images: string[];
}

export async function provision(log: (l: string) => void = () => undefined): Promise<Provisioned> {
  await ensureDebianPackages(HOST_PACKAGES);
  const bins = await ensureKubeBinaries(log);
  const images = await ensureImages(bins, log);
  return { bins, images };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command, bounded; never rejects (the caller reads `code`). */
export function run(
  cmd: string,
  args: string[],
  opts: {
    timeoutMs: number;
    env?: Record<string, string>;
    input?: string;
    echo?: boolean;
    /** Called with each complete line of stdout as it arrives. */
    onLine?: (line: string) => void;
  },
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      env: { ...process.env, ...opts.env },
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (opts.onLine) {
        const lines = (partial + d.toString()).split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) opts.onLine(l);
      }
      if (opts.echo) process.stdout.write(d);
    });
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (opts.echo) process.stderr.write(d);
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    const timer = setTimeout(() => {
      stderr += `\n[timed out after ${opts.timeoutMs} ms: ${cmd} ${args.join(' ')}]`;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: stderr + err.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

function clusterEnv(p: Provisioned): Record<string, string> {
  return {
    KUBE_BIN: p.bins.kubernetes,
    ETCD_BIN: p.bins.etcd,
    COREDNS_BIN: p.bins.coredns,
    METRICS_SERVER_BIN: p.bins.metricsServer,
    KUBE_ROUTER_BIN: p.bins.kubeRouter,
    PROMETHEUS_BIN: p.bins.prometheus,
    METRICS_ADAPTER_BIN: p.bins.metricsAdapter,
    IMAGES: p.images.join(' '),
  };
}

/** Starts the cluster (taking down leftovers of an earlier one first). Bounded: 5 minutes. */
export async function clusterUp(p: Provisioned, echo = false): Promise<void> {
  const r = await run('bash', [CLUSTER_SCRIPT, 'up'], { timeoutMs: 5 * 60_000, env: clusterEnv(p), echo });
  if (r.code !== 0)
    throw new Error(`local Kubernetes did not start (exit ${r.code}):\n${r.stderr.slice(-6000)}`);
}

/** Stops the cluster and removes everything it made. Bounded: 2 minutes. */
export async function clusterDown(echo = false): Promise<void> {
  const r = await run('bash', [CLUSTER_SCRIPT, 'down'], { timeoutMs: 2 * 60_000, echo });
  if (r.code !== 0) throw new Error(`cluster.sh down failed (exit ${r.code}):\n${r.stderr.slice(-3000)}`);
}

/** What a stopped cluster must not leave behind; empty when `cluster.sh down` cleaned up. */
export async function leftovers(): Promise<string[]> {
  const found: string[] = [];
  for (const dir of [STATE_DIR, '/run/switchboard-k8s', `/run/netns/${NETNS}`]) {
    if (existsSync(dir)) found.push(`path ${dir}`);
  }
  const netns = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith('cni-')) : [];
  found.push(...netns.map((n) => `pod network namespace /run/netns/${n}`));
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter(
      (m) =>
        m.startsWith(STATE_DIR) || m.startsWith('/run/switchboard-k8s') || m.startsWith('/run/netns/cni-'),
    );
  found.push(...mounts.map((m) => `mount ${m}`));
  for (const ctl of existsSync('/sys/fs/cgroup') ? readdirSync('/sys/fs/cgroup') : []) {
    if (existsSync(join('/sys/fs/cgroup', ctl, 'kubepods')))
      found.push(`cgroup /sys/fs/cgroup/${ctl}/kubepods`);
  }
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue;
    }
    if (cmd.includes('/switchboard-k8s/') && !cmd.includes('leftovers'))
      found.push(`process ${pid}: ${cmd.slice(0, 120)}`);
  }
  const iptables = await run('iptables-save', [], { timeoutMs: 10_000 });
  if (/KUBE-|kube-router/i.test(iptables.stdout)) found.push("KUBE chains in the host's iptables");
  return found;
}

export function kubectl(
  args: string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  return run(KUBECTL, args, {
    timeoutMs: opts.timeoutMs ?? 60_000,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
}

async function cli(cmd: string | undefined): Promise<void> {
  const log = (l: string): void => console.error(`[provision] ${l}`);
  const t0 = Date.now();
  if (cmd === 'down') {
    await clusterDown(true);
    const left = await leftovers();
    if (left.length > 0) throw new Error(`the cluster left behind:\n  ${left.join('\n  ')}`);
    return;
  }
  if (cmd !== 'provision' && cmd !== 'up') {
    console.error('usage: tsx tests/infra/kube/cluster.ts provision|up|down');
    process.exitCode = 2;
    return;
  }
  const missing = missingPrerequisite();
  if (missing && cmd === 'provision' && process.env.CI !== 'true') {
    console.error(`skipped: the local Kubernetes needs ${missing} (the Kubernetes tier will skip too)`);
    return;
  }
  if (missing) throw new Error(`the local Kubernetes needs ${missing}`);
  const p = await provision(log);
  log(`provisioned in ${((Date.now() - t0) / 1000).toFixed(1)} s (Kubernetes ${KUBERNETES_VERSION})`);
  if (cmd === 'up') {
    const t1 = Date.now();
    await clusterUp(p, true);
    log(`cluster up in ${((Date.now() - t1) / 1000).toFixed(1)} s; kubectl: ${KUBECTL}`);
  }
}

if (isEntryPoint(import.meta.url)) {
  cli(process.argv[2]).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
