/**
 * Helpers of the Kubernetes tier: the probe and other programs inside the cluster's network,
 * a recorder of backend pods (logs and how each container ended), and diagnostics.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IN_CLUSTER_NET, KUBECTL, kubectl, run } from '../infra/kube/cluster.js';
import type { RunResult } from '../infra/kube/cluster.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const NS = 'switchboard';
export const BACKEND = 'app.kubernetes.io/name=switchboard-backend';
export const CANARY = 'app.kubernetes.io/name=switchboard-canary';
/** The canary's rooms (`canary-<run>-<n>`, k8s/canary): kept when a scenario empties the store. */
export const CANARY_ROOMS = 'canary-';
export const SERVICE_URL = `http://switchboard.${NS}.svc.cluster.local:8080`;
export const GRPC_TARGET = `dns:///switchboard-grpc.${NS}.svc.cluster.local:50051`;

export interface Verdict {
  ok: boolean;
  sent: number;
  acked: number;
  delivered: number;
  expected: number;
  lost: number;
  duplicates: number;
  outOfOrder: number;
  reconnects: number;
  maxDeliveryGapMs: number;
  reasons: string[];
}

/** The last JSON object of a program's output (the probe's verdict). */
export function lastJson<T>(text: string): T {
  const start = text.lastIndexOf('\n{');
  const from = start >= 0 ? start + 1 : text.indexOf('{');
  if (from < 0) throw new Error(`no JSON in output:\n${text.slice(-2000)}`);
  return JSON.parse(text.slice(from)) as T;
}

export interface RunningProbe {
  /** Resolves once every client has joined (`probe: running`). */
  running: Promise<void>;
  /** Exit code and verdict. */
  done: Promise<{ code: number; verdict: Verdict; stderr: string }>;
  stop(): void;
}

/** switchboard-probe in the cluster's network, against the backend Service. Bounded by its duration. */
export function startProbe(args: string[], maxMs: number): RunningProbe {
  const child = spawn(
    IN_CLUSTER_NET,
    ['node', `${ROOT}/messages-lib/dist/probe/cli.js`, '--url', SERVICE_URL, ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  let onRunning: () => void = () => undefined;
  let onFail: (e: Error) => void = () => undefined;
  const running = new Promise<void>((res, rej) => {
    onRunning = res;
    onFail = rej;
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.includes('probe: running')) onRunning();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), maxMs);
  const done = new Promise<{ code: number; verdict: Verdict; stderr: string }>((res, rej) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      onFail(new Error(`probe exited (${code}) before it was running:\n${stderr.slice(-3000)}`));
      try {
        res({ code: code ?? 1, verdict: lastJson<Verdict>(stdout), stderr });
      } catch (err) {
        rej(new Error(`probe exit ${code}, no verdict: ${String(err)}\nstderr:\n${stderr.slice(-3000)}`));
      }
    });
  });
  running.catch(() => undefined); // for whoever waits for it: maybe nobody
  return { running, done, stop: () => child.kill('SIGTERM') };
}

/** A command inside the cluster's network (with the cluster's DNS). */
export function inClusterNet(cmd: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return run(IN_CLUSTER_NET, [cmd, ...args], { timeoutMs });
}

/** kubectl that must succeed; returns stdout. */
export async function k(args: string[], timeoutMs = 60_000, input?: string): Promise<string> {
  const r = await kubectl(args, { timeoutMs, ...(input !== undefined ? { input } : {}) });
  if (r.code !== 0)
    throw new Error(`kubectl ${args.join(' ')} failed (exit ${r.code}):\n${r.stderr.slice(-3000)}`);
  return r.stdout;
}

/**
 * Deletes every stored chat message but the canary's, from inside a backend pod (the only pods the
 * NetworkPolicy lets reach the database), with the backend's own driver and settings. The canary
 * runs through every scenario; emptying its rooms under it would reuse their seqs. Returns how
 * many went.
 */
export async function emptyMessageStore(): Promise<number> {
  const script = `
    import { MongoClient } from 'mongodb';
    const client = new MongoClient(process.env.MONGO_URL, { serverSelectionTimeoutMS: 20000 });
    try {
      const messages = client.db(process.env.MONGO_DB).collection('messages');
      const rooms = (await messages.distinct('room')).filter((r) => !r.startsWith('${CANARY_ROOMS}'));
      const r = await messages.deleteMany({ room: { $in: rooms } });
      console.log(JSON.stringify({ deleted: r.deletedCount }));
    } finally {
      await client.close();
    }`;
  const out = await k(
    [
      '-n',
      NS,
      'exec',
      'deploy/switchboard-backend',
      '-c',
      'backend',
      '--',
      'node',
      '--input-type=module',
      '-e',
      script,
    ],
    90_000,
  );
  return lastJson<{ deleted: number }>(out).deleted;
}

/** Polls `check` every second until it returns a value (bounded). */
export async function until<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${what}: not within ${timeoutMs / 1000} s${last ? ` (last error: ${String(last)})` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

export async function readyBackendPods(): Promise<string[]> {
  const out = await k([
    '-n',
    NS,
    'get',
    'pods',
    '-l',
    BACKEND,
    '-o',
    'jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp} {.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
  ]);
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length === 2 && f[1] === 'True')
    .map((f) => f[0]!);
}

export interface PodEnd {
  exitCode: number;
  reason: string;
  signal?: number;
}

export interface RecordedPod {
  name: string;
  logs: string;
  end?: PodEnd;
}

/**
 * Follows every pod of `selector` while it lives: its logs (`kubectl logs -f` until the
 * container ends) and how its container terminated (a watch of the pods), so a pod removed by a
 * scale-down can still be checked after its object is gone.
 */
export class PodRecorder {
  readonly pods = new Map<string, RecordedPod>();

  constructor(
    private readonly selector = BACKEND,
    private readonly container = 'backend',
  ) {}

  private readonly children: ChildProcess[] = [];
  private readonly followed = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private watchBuf = '';

  start(): void {
    const watch = spawn(
      KUBECTL,
      [
        '-n',
        NS,
        'get',
        'pods',
        '-l',
        this.selector,
        '--watch',
        '-o',
        'jsonpath={.metadata.name} {.status.containerStatuses[0].state.terminated.exitCode} {.status.containerStatuses[0].state.terminated.reason} {.status.containerStatuses[0].state.terminated.signal}{"\\n"}',
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    watch.stdout.on('data', (d: Buffer) => {
      this.watchBuf += d.toString();
      const lines = this.watchBuf.split('\n');
      this.watchBuf = lines.pop() ?? '';
      for (const line of lines) {
        const [name, code, reason, signal] = line.trim().split(/\s+/);
        if (!name) continue;
        const pod = this.pod(name);
        if (code !== undefined && code !== '') {
          pod.end = {
            exitCode: Number(code),
            reason: reason ?? '',
            ...(signal ? { signal: Number(signal) } : {}),
          };
        }
      }
    });
    this.children.push(watch);
    const scan = async (): Promise<void> => {
      const r = await kubectl(['-n', NS, 'get', 'pods', '-l', this.selector, '-o', 'name'], {
        timeoutMs: 10_000,
      });
      for (const line of r.stdout.split('\n')) {
        const name = line.trim().replace(/^pod\//, '');
        if (name && !this.followed.has(name)) {
          this.followed.add(name);
          this.follow(this.pod(name));
        }
      }
    };
    // A failed scan is retried by the next one: say so, but keep following.
    const scanNow = (): void =>
      void scan().catch((err: unknown) =>
        console.error(`[pods] could not list the backend pods: ${String(err)}`),
      );
    this.timer = setInterval(scanNow, 2000);
    scanNow();
  }

  private pod(name: string): RecordedPod {
    let p = this.pods.get(name);
    if (!p) {
      p = { name, logs: '' };
      this.pods.set(name, p);
    }
    return p;
  }

  private follow(pod: RecordedPod): void {
    // Retried until the container has started; ends by itself when the container ends.
    const attempt = (left: number): void => {
      const child = spawn(KUBECTL, ['-n', NS, 'logs', '-f', pod.name, '-c', this.container], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let got = '';
      child.stdout.on('data', (d: Buffer) => {
        got += d.toString();
        pod.logs = got;
      });
      child.on('close', (code) => {
        if (code !== 0 && got === '' && left > 0 && this.timer) setTimeout(() => attempt(left - 1), 1000);
      });
      this.children.push(child);
    };
    attempt(60);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const c of this.children) c.kill('SIGTERM');
  }
}

/** What a person would read when a step fails: events, pods, and the logs of pods not Ready. */
export async function diagnostics(): Promise<string> {
  const parts: string[] = [];
  const add = async (title: string, args: string[]): Promise<void> => {
    const r = await kubectl(args, { timeoutMs: 20_000 });
    parts.push(`---- ${title}\n${r.stdout}${r.stderr}`);
  };
  await add('events', ['get', 'events', '-A', '--sort-by=.lastTimestamp']);
  await add('pods', ['get', 'pods', '-A', '-o', 'wide']);
  const r = await kubectl(
    [
      'get',
      'pods',
      '-A',
      '-o',
      'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
    ],
    { timeoutMs: 20_000 },
  );
  for (const line of r.stdout.split('\n')) {
    const [nsName, ready] = line.trim().split(/\s+/);
    if (!nsName || ready === 'True') continue;
    const [ns, name] = nsName.split('/');
    await add(`logs of ${nsName}`, ['-n', ns!, 'logs', name!, '--all-containers', '--tail=80']);
    await add(`previous logs of ${nsName}`, [
      '-n',
      ns!,
      'logs',
      name!,
      '--all-containers',
      '--previous',
      '--tail=40',
    ]);
  }
  return parts.join('\n');
}

/**
 * The host pids of a pod's first container, read from the kubelet's pod cgroup (cgroupfs driver:
 * `<controller>/kubepods[/<qos>]/pod<uid>/<container id>/cgroup.procs`). A signal sent to them is
 * what a crash or the kernel's OOM killer does: no PreStop hook, no SIGTERM, no drain.
 */
export async function containerPids(pod: string): Promise<number[]> {
  const [uid, containerId] = (
    await k([
      '-n',
      NS,
      'get',
      'pod',
      pod,
      '-o',
      'jsonpath={.metadata.uid} {.status.containerStatuses[0].containerID}',
    ])
  ).split(' ');
  const id = containerId?.replace(/^containerd:\/\//, '');
  if (!uid || !id) throw new Error(`${pod}: no uid or container id yet`);
  const found = new Set<number>();
  const podDirs = async (dir: string, depth: number): Promise<string[]> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    const out: string[] = [];
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      if (e.name === `pod${uid}`) out.push(join(dir, e.name));
      else if (depth > 0 && !e.name.startsWith('pod'))
        out.push(...(await podDirs(join(dir, e.name), depth - 1)));
    }
    return out;
  };
  for (const controller of await readdir('/sys/fs/cgroup').catch(() => [])) {
    for (const podDir of await podDirs(join('/sys/fs/cgroup', controller, 'kubepods'), 1)) {
      const procs = await readFile(join(podDir, id, 'cgroup.procs'), 'utf8').catch(() => '');
      for (const line of procs.split('\n')) if (/^\d+$/.test(line)) found.add(Number(line));
    }
  }
  return [...found];
}
