/**
 * The local stand-in for the Kubernetes deployment: Hazelcast members, FerretDB, backend
 * processes running the product's own entry point as the image runs it (the built
 * `backend/dist/main.js`, so SIGTERM takes the real drain path) on fixed ports, and HAProxy in
 * front with health checks on `/ready`.
 * Slots are declared up front: scale-up starts a node on a spare slot; a restart keeps its port.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type FerretDb, startFerretDb } from '../infra/ferretdb.js';
import { DbProxy } from './db-proxy.js';
import { type Haproxy, startHaproxy } from '../infra/haproxy.js';
import { type HazelcastCluster, startHazelcastCluster } from '../infra/hazelcast.js';
import { type ExitInfo, type ManagedProcess, pickPorts, startProcess, waitFor } from '../infra/proc.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const mainJs = fileURLToPath(new URL('../../backend/dist/main.js', import.meta.url));
let built = false;

/**
 * Builds the backend once per test process (`tsc -b`: nothing to do when it is up to date). The
 * built code is what a pod runs; a node started through tsx spends about 0.7 s more CPU booting,
 * which on this 2-core machine is taken from the database and the other nodes in every restart.
 */
function ensureBuilt(): void {
  if (built) return;
  execFileSync(process.execPath, [tscBin, '-b', 'protocol', 'backend'], { cwd: repoRoot, stdio: 'inherit' });
  built = true;
}
const tscBin = fileURLToPath(new URL('../../node_modules/typescript/bin/tsc', import.meta.url));

export interface BackendSlot {
  index: number;
  port: number;
  /** The admin listener (`/prestop`, `/metrics`) of the running process. */
  adminPort?: number;
  proc?: ManagedProcess;
  nodeId?: string | undefined;
  /** When the running process started its shutdown (SIGTERM sent). */
  termAt?: number | undefined;
}

export class FaultStack {
  readonly slots: BackendSlot[];
  /** Between the backends and the database, when started with `dbProxy`. */
  proxy: DbProxy | undefined;
  private constructor(
    readonly hz: HazelcastCluster,
    readonly db: FerretDb,
    readonly lb: Haproxy,
    readonly filesDir: string,
    readonly dbName: string,
    ports: number[],
    private readonly env: Record<string, string>,
  ) {
    this.slots = ports.map((port, index) => ({ index, port }));
  }

  /** Starts the stack with `running` of `slots` backend slots up. */
  static async start(opts: {
    slots: number;
    running: number;
    members?: number;
    env?: Record<string, string>;
    /** Backends reach the database through a DbProxy (stack.proxy) that can slow or stall it. */
    dbProxy?: boolean;
  }): Promise<FaultStack> {
    ensureBuilt();
    const ports = await pickPorts(opts.slots);
    const [hz, db, filesDir, lb] = await Promise.all([
      startHazelcastCluster({ members: opts.members ?? 2 }),
      startFerretDb(),
      mkdtemp(join(tmpdir(), 'sb-fault-files-')),
      startHaproxy({ serverPorts: ports }),
    ]);
    const stack = new FaultStack(
      hz,
      db,
      lb,
      filesDir,
      `sbfault_${Date.now().toString(36)}`,
      ports,
      opts.env ?? {},
    );
    try {
      if (opts.dbProxy) stack.proxy = await DbProxy.start(db.port);
      await Promise.all(stack.slots.slice(0, opts.running).map((s) => stack.startBackend(s.index)));
    } catch (err) {
      // The caller never gets the stack to stop: what did start stops here.
      await stack.stop().catch(() => undefined);
      throw err;
    }
    return stack;
  }

  running(): BackendSlot[] {
    return this.slots.filter((s) => s.proc?.isRunning());
  }

  /** Starts slot i's backend and waits until it is ready and HAProxy routes to it. */
  async startBackend(i: number): Promise<BackendSlot> {
    const slot = this.slots[i]!;
    if (slot.proc?.isRunning()) throw new Error(`slot ${i} is already running`);
    slot.termAt = undefined;
    slot.proc = startProcess(`backend-${i}`, process.execPath, [mainJs], {
      cwd: repoRoot,
      env: {
        HOST: '127.0.0.1',
        PORT: String(slot.port),
        GRPC_PORT: '0',
        ADMIN_PORT: '0',
        NODE_ID: `node${i}`,
        LOG_LEVEL: 'info',
        CLUSTER_MODE: 'hazelcast',
        HAZELCAST_MEMBERS: this.hz.members.map((m) => m.address).join(','),
        HAZELCAST_CLUSTER_NAME: this.hz.clusterName,
        CLUSTER_HOST: '127.0.0.1',
        CLUSTER_LEASE_MS: '3000',
        STORE: 'mongodb',
        MONGO_URL: this.proxy?.url ?? this.db.url,
        MONGO_DB: this.dbName,
        FILES_DIR: this.filesDir,
        PRESTOP_WAIT_MS: '1500',
        ...this.env,
      },
      // FAULT_LOG_DIR keeps every backend's full output (restarts append) for a post-mortem.
      ...(process.env.FAULT_LOG_DIR ? { logFile: join(process.env.FAULT_LOG_DIR, `backend-${i}.log`) } : {}),
    });
    const line = (await slot.proc.waitForOutput(
      /"nodeId":"(node\d+-[0-9a-f]+)"/,
      60_000,
    )) as RegExpMatchArray;
    slot.nodeId = line[1];
    await slot.proc.waitForOutput('switchboard node listening', 60_000);
    const admin = (await slot.proc.waitForOutput(
      /switchboard admin \S+ \S+ listening on [^:]+:(\d+)/,
      60_000,
    )) as RegExpMatchArray;
    slot.adminPort = Number(admin[1]);
    await waitFor(
      `backend-${i} ready`,
      // not listening yet: asked again
      async () => (await fetch(`http://127.0.0.1:${slot.port}/ready`).catch(() => undefined))?.ok,
      30_000,
      100,
    );
    await this.lb.waitForServer(slot.port, 'UP');
    return slot;
  }

  /** SIGKILL: a crashed pod. Resolves once the process is gone. */
  async kill(i: number): Promise<void> {
    const slot = this.slots[i]!;
    slot.proc?.kill('SIGKILL');
    await slot.proc?.exited;
  }

  /**
   * What the kubelet does on scale-down: the PreStop hook (`GET /prestop`, which holds while
   * the endpoints drop the pod), then SIGTERM. Resolves with the exit and how long the drain took.
   */
  async terminate(i: number, opts: { prestop?: boolean } = {}): Promise<{ exit: ExitInfo; ms: number }> {
    const slot = this.slots[i]!;
    const proc = slot.proc;
    if (!proc?.isRunning()) throw new Error(`slot ${i} is not running`);
    const t0 = Date.now();
    if (opts.prestop !== false) {
      const res = await fetch(`http://127.0.0.1:${slot.adminPort}/prestop`, {
        signal: AbortSignal.timeout(30_000),
      });
      if (!res.ok) throw new Error(`GET /prestop answered ${res.status}`);
    }
    slot.termAt = Date.now();
    proc.kill('SIGTERM');
    const exit = await Promise.race([
      proc.exited,
      new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new Error(`backend-${i} did not exit within 70 s of SIGTERM`)),
          70_000,
        ).unref(),
      ),
    ]);
    return { exit, ms: Date.now() - t0 };
  }

  /** The node's drain report (the `drain: complete` log line) of its last shutdown. */
  drainReport(i: number): { ms: number; sessionsAtStart: number; sessionsLeft: number } | undefined {
    const out = this.slots[i]?.proc?.output() ?? '';
    const line = out
      .split('\n')
      .reverse()
      .find((l) => l.includes('drain: complete'));
    return line
      ? (JSON.parse(line.slice(line.indexOf('{'))) as ReturnType<FaultStack['drainReport']>)
      : undefined;
  }

  /**
   * For a failed scenario: every backend's warnings and errors (pino level ≥ 40) counted by
   * message, and the last few lines as they were, so a stall can be told from an error storm.
   * FAULT_LOG_DIR keeps the full logs.
   */
  warningSummary(): string {
    const out: string[] = ['      backend warnings (level >= 40):'];
    for (const slot of this.slots) {
      const lines = (slot.proc?.output() ?? '').split('\n').filter((l) => /"level":(4|5|6)0/.test(l));
      const counts = new Map<string, number>();
      for (const l of lines) {
        const m = /"msg":"([^"]*)"/.exec(l)?.[1] ?? '?';
        const err = /"err":"([^"]{0,120})/.exec(l)?.[1];
        const key = err ? `${m}: ${err}` : m;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      out.push(`      backend-${slot.index} (${slot.nodeId ?? 'never started'}): ${lines.length} lines`);
      for (const [k, n] of counts) out.push(`        ${n} × ${k}`);
      for (const l of lines.slice(-5)) out.push(`        last: ${l.slice(0, 300)}`);
    }
    return out.join('\n');
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.slots.map((s) => s.proc?.stop(15_000)));
    await this.proxy?.stop();
    await Promise.allSettled([this.lb.stop(), this.hz.stop(), this.db.stop()]);
    await rm(this.filesDir, { recursive: true, force: true });
  }
}
