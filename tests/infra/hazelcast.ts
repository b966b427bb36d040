/**
 * Hazelcast 5.6 members for tests: fetches the jar with Maven into the cache
 * and starts small clusters bound to 127.0.0.1 only.
 *
 * CLI:
 *   npx tsx tests/infra/hazelcast.ts fetch
 *   npx tsx tests/infra/hazelcast.ts start [--members 2] [--cluster-name x] [--heap 256] [--log-dir d]
 */
import { existsSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { acquireLock, cacheDir, ensureDir } from './cache.js';
import { isEntryPoint, pickPorts, removeOnExit, startProcess, waitFor } from './proc.js';
import type { ManagedProcess } from './proc.js';

export const HAZELCAST_VERSION = '5.6.0';
const MAVEN_DEPENDENCY_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:3.8.1';
const FETCH_TIMEOUT_MS = 5 * 60_000;
const START_TIMEOUT_MS = 90_000;

/** Flags Hazelcast documents for running on JDK 17 (silence its illegal-access warnings). */
export const JDK17_FLAGS = [
  '--add-modules',
  'java.se',
  '--add-exports',
  'java.base/jdk.internal.ref=ALL-UNNAMED',
  '--add-opens',
  'java.base/java.lang=ALL-UNNAMED',
  '--add-opens',
  'java.base/java.nio=ALL-UNNAMED',
  '--add-opens',
  'java.base/sun.nio.ch=ALL-UNNAMED',
  '--add-opens',
  'java.management/sun.management=ALL-UNNAMED',
  '--add-opens',
  'jdk.management/com.sun.management.internal=ALL-UNNAMED',
];

/**
 * Member properties tuned for fast tests:
 * - heartbeats every second, a silent member is dropped after 5 s;
 * - join without the default 5-20 s "wait before join" pauses;
 * - split-brain merge checks after 5 s instead of 300 s;
 * - bind only to 127.0.0.1 (not 0.0.0.0);
 * - SIGTERM = graceful shutdown bounded to 10 s;
 * - clients silent for 10 s are dropped, and their resources freed 2 s later.
 */
export const TEST_PROPERTIES: Readonly<Record<string, string>> = {
  'hazelcast.phone.home.enabled': 'false',
  'hazelcast.socket.bind.any': 'false',
  'hazelcast.heartbeat.interval.seconds': '1',
  'hazelcast.max.no.heartbeat.seconds': '5',
  'hazelcast.wait.seconds.before.join': '0',
  'hazelcast.max.wait.seconds.before.join': '0',
  'hazelcast.merge.first.run.delay.seconds': '5',
  'hazelcast.merge.next.run.delay.seconds': '5',
  'hazelcast.shutdownhook.policy': 'GRACEFUL',
  'hazelcast.graceful.shutdown.max.wait': '10',
  'hazelcast.client.max.no.heartbeat.seconds': '10',
  'hazelcast.client.cleanup.timeout.millis': '2000',
  'hazelcast.health.monitoring.level': 'OFF',
};

/* ------------------------------------------------------------------------ */
/* Jar                                                                       */
/* ------------------------------------------------------------------------ */

let jarPromise: Promise<string> | undefined;

function jarLooksValid(path: string): boolean {
  try {
    return statSync(path).size > 1_000_000;
  } catch {
    return false;
  }
}

/**
 * Path of hazelcast-5.6.0.jar in `<cacheDir>/hazelcast/`, downloading it with
 * Maven (local repo `<cacheDir>/m2`) if absent. Safe to call concurrently,
 * from one or several processes.
 */
export function ensureHazelcastJar(): Promise<string> {
  jarPromise ??= fetchJar().catch((err: unknown) => {
    jarPromise = undefined;
    throw err;
  });
  return jarPromise;
}

async function fetchJar(): Promise<string> {
  const dir = ensureDir(join(cacheDir, 'hazelcast'));
  const jar = join(dir, `hazelcast-${HAZELCAST_VERSION}.jar`);
  if (jarLooksValid(jar)) return jar;

  const release = await acquireLock(
    join(dir, '.fetch.lock'),
    () => jarLooksValid(jar),
    FETCH_TIMEOUT_MS + 60_000,
    FETCH_TIMEOUT_MS + 30_000,
  );
  if (!release) return jar;
  const tmpOut = await mkdtemp(join(dir, '.tmp-'));
  try {
    if (jarLooksValid(jar)) return jar;
    const args = [
      '-B',
      '-q',
      '-C', // strict checksums
      `${MAVEN_DEPENDENCY_PLUGIN}:copy`,
      `-Dartifact=com.hazelcast:hazelcast:${HAZELCAST_VERSION}:jar`,
      `-DoutputDirectory=${tmpOut}`,
      `-Dmaven.repo.local=${join(cacheDir, 'm2')}`,
    ];
    const mvn = startProcess('mvn', 'mvn', args, { cwd: tmpOut });
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      mvn.exited,
      new Promise<'timeout'>((r) => {
        timer = setTimeout(() => r('timeout'), FETCH_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (result === 'timeout') {
      await mvn.stop(5000);
      throw new Error(
        `fetching Hazelcast ${HAZELCAST_VERSION} with Maven timed out after ${FETCH_TIMEOUT_MS / 1000}s ` +
          `(mvn ${args.join(' ')}); output:\n${mvn.output().slice(-3000)}`,
      );
    }
    const files = await readdir(tmpOut);
    const got = files.find((f) => f.endsWith('.jar'));
    if (result.code !== 0 || !got || !jarLooksValid(join(tmpOut, got))) {
      throw new Error(
        `could not fetch com.hazelcast:hazelcast:${HAZELCAST_VERSION} with Maven ` +
          `(exit code ${result.code}, signal ${result.signal}; is Maven Central reachable?). ` +
          `Command: mvn ${args.join(' ')}\n${mvn.output().slice(-3000)}`,
      );
    }
    await rename(join(tmpOut, got), jar); // atomic within the same directory
    return jar;
  } finally {
    await rm(tmpOut, { recursive: true, force: true });
    await release();
  }
}

/* ------------------------------------------------------------------------ */
/* Cluster                                                                   */
/* ------------------------------------------------------------------------ */

export interface HazelcastMember {
  index: number;
  port: number;
  /** "127.0.0.1:port" */
  address: string;
  configFile: string;
  /** Current process (replaced by restartMember). */
  proc: ManagedProcess;
}

export interface HazelcastCluster {
  clusterName: string;
  members: HazelcastMember[];
  /** "127.0.0.1:port" of the members whose process is running. */
  addresses(): string[];
  /** Stops member i: SIGTERM (graceful, default) or SIGKILL (crash). Resolves when it exited. */
  stopMember(i: number, signal?: 'SIGKILL' | 'SIGTERM'): Promise<void>;
  /** Starts a stopped member again on the same port; resolves once it joined the others. */
  restartMember(i: number, timeoutMs?: number): Promise<void>;
  /** Waits until every running member's latest member list has `size` entries. */
  waitForClusterSize(size: number, timeoutMs?: number): Promise<void>;
  /** Member i's `/hazelcast/health` (REST health-check endpoint on the member port). */
  health(i: number): Promise<HazelcastHealth>;
  /**
   * Waits until every running member reports a cluster of all running members,
   * `clusterSafe` (all backups in sync) and an empty migration queue, i.e. one
   * more member may now crash without data loss.
   */
  waitForClusterSafe(timeoutMs?: number): Promise<void>;
  /** Stops all members (graceful, SIGKILL after 15 s) and removes the config dir. */
  stop(): Promise<void>;
}

export interface HazelcastHealth {
  nodeState: string;
  clusterState: string;
  clusterSafe: boolean;
  migrationQueueSize: number;
  clusterSize: number;
}

export interface StartHazelcastOptions {
  /** Number of members (default 2). */
  members?: number;
  /** Cluster name (default random `sb-test-xxxxxxxx`). */
  clusterName?: string;
  /** Max heap per member in MB (default 256). */
  heapMb?: number;
  /** Extra/overriding Hazelcast properties. */
  properties?: Record<string, string>;
  /** If set, member logs are also appended to `<logDir>/<clusterName>-member-<i>.log`. */
  logDir?: string;
  /** Overall start timeout (default 90 s). */
  timeoutMs?: number;
}

const MEMBERS_RE = /Members \{size:(\d+), ver:(\d+)\}/g;

/** Size of the latest member list this member logged, or 0. */
function lastClusterSize(output: string): number {
  let size = 0;
  for (const m of output.matchAll(MEMBERS_RE)) size = Number(m[1]);
  return size;
}

function yamlConfig(
  clusterName: string,
  port: number,
  allPorts: number[],
  properties: Record<string, string>,
): string {
  const q = (s: string): string => JSON.stringify(s); // JSON strings are valid YAML scalars
  const props = Object.entries(properties)
    .map(([k, v]) => `    ${q(k)}: ${q(v)}`)
    .join('\n');
  const members = allPorts.map((p) => `          - ${q(`127.0.0.1:${p}`)}`).join('\n');
  return `# generated by tests/infra/hazelcast.ts
hazelcast:
  cluster-name: ${q(clusterName)}
  properties:
${props}
  network:
    port:
      auto-increment: false
      port-count: 1
      port: ${port}
    interfaces:
      enabled: true
      interfaces:
        - 127.0.0.1
    rest-api:
      enabled: true
      endpoint-groups:
        HEALTH_CHECK:
          enabled: true
    join:
      auto-detection:
        enabled: false
      multicast:
        enabled: false
      tcp-ip:
        enabled: true
        connection-timeout-seconds: 2
        member-list:
${members}
`;
}

function javaBin(): string {
  const home = process.env.JAVA_HOME;
  if (home && existsSync(join(home, 'bin', 'java'))) return join(home, 'bin', 'java');
  return 'java';
}

/** JVM flags of a member, except the config file and class path. */
function jvmFlags(heapMb: number): string[] {
  return [
    `-Xmx${heapMb}m`,
    // Faster start-up on small boxes: C1 only, serial GC, class-data sharing.
    '-XX:+UseSerialGC',
    '-XX:TieredStopAtLevel=1',
    '-Xshare:auto',
    '-XX:-UsePerfData',
    '-Djava.net.preferIPv4Stack=true',
    '-Dhazelcast.phone.home.enabled=false',
    '-Dhazelcast.logging.type=jdk',
    '-Djava.util.logging.SimpleFormatter.format=%1$tT.%1$tL %4$s %5$s%6$s%n',
    ...JDK17_FLAGS,
  ];
}

/*
 * AppCDS: the first member started by a process records the classes it loads
 * into a dynamic class-data-sharing archive when it exits cleanly
 * (-XX:ArchiveClassesAtExit); later members map it (-XX:SharedArchiveFile),
 * which saves roughly 0.5 s of start-up per member. The archive is keyed by
 * the java binary, the jar and the flags; a stale or foreign archive is simply
 * ignored by the JVM (-Xshare:auto). Disable with SB_HZ_CDS=0.
 */
let cdsRecording = false;
const cdsPending = new Set<Promise<void>>();

/** Removes archive temp files left behind by processes that died while recording. */
function removeStaleCdsTemps(dir: string): void {
  for (const f of readdirSync(dir)) {
    const m = /^cds-[0-9a-f]+\.jsa\.tmp-(\d+)-/.exec(f);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (err) {
      alive = (err as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) rmSync(join(dir, f), { force: true });
  }
}

interface CdsPlan {
  args: string[];
  /** Called with the member's exit status. */
  onExit?: (cleanExit: boolean) => Promise<void>;
}

function cdsPlan(jar: string, flags: string[]): CdsPlan {
  if (process.env.SB_HZ_CDS === '0') return { args: [] };
  let javaId = javaBin();
  try {
    javaId = realpathSync(javaId);
  } catch {
    // "java" from PATH
  }
  const jarStat = statSync(jar);
  const key = createHash('sha256')
    .update(JSON.stringify([javaId, jar, jarStat.size, jarStat.mtimeMs, flags, process.arch]))
    .digest('hex')
    .slice(0, 16);
  const jsa = join(cacheDir, 'hazelcast', `cds-${key}.jsa`);
  if (existsSync(jsa)) return { args: [`-XX:SharedArchiveFile=${jsa}`] };
  if (cdsRecording) return { args: [] };
  cdsRecording = true;
  removeStaleCdsTemps(dirname(jsa));
  const tmp = `${jsa}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`;
  return {
    args: [`-XX:ArchiveClassesAtExit=${tmp}`],
    onExit: async (cleanExit) => {
      try {
        if (cleanExit && existsSync(tmp) && statSync(tmp).size > 0 && !existsSync(jsa))
          await rename(tmp, jsa);
      } finally {
        await rm(tmp, { force: true });
        cdsRecording = false;
      }
    },
  };
}

const MEMBER_MAIN = 'com.hazelcast.core.server.HazelcastMemberStarter';

const BIND_FAILURE_RE = /already in use|BindException/;

export async function startHazelcastCluster(opts: StartHazelcastOptions = {}): Promise<HazelcastCluster> {
  // A port picked as free can still be grabbed by someone else before the JVM
  // binds it: retry with fresh ports in that (rare) case.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      if (attempt < 3 && err instanceof PortInUseError) continue;
      throw err;
    }
  }
}

class PortInUseError extends Error {}

async function startOnce(opts: StartHazelcastOptions): Promise<HazelcastCluster> {
  const count = opts.members ?? 2;
  if (!Number.isInteger(count) || count < 1) throw new Error(`invalid member count ${count}`);
  const clusterName = opts.clusterName ?? `sb-test-${randomBytes(4).toString('hex')}`;
  const heapMb = opts.heapMb ?? 256;
  const timeoutMs = opts.timeoutMs ?? START_TIMEOUT_MS;
  const properties = { ...TEST_PROPERTIES, ...(opts.properties ?? {}) };

  const jar = await ensureHazelcastJar();
  const ports = await pickPorts(count);
  const dir = await mkdtemp(join(tmpdir(), `${clusterName}-`));
  const cancelDirCleanup = removeOnExit(dir);

  const flags = jvmFlags(heapMb);
  const launch = (m: Omit<HazelcastMember, 'proc'>): ManagedProcess => {
    const cds = cdsPlan(jar, flags);
    const args = [...flags, ...cds.args, `-Dhazelcast.config=${m.configFile}`, '-cp', jar, MEMBER_MAIN];
    const proc = startProcess(`hz-${m.index}:${m.port}`, javaBin(), args, {
      cwd: dir,
      ...(opts.logDir ? { logFile: join(opts.logDir, `${clusterName}-member-${m.index}.log`) } : {}),
    });
    if (cds.onExit) {
      const onExit = cds.onExit;
      const done = proc.exited
        .then((e) => onExit(e.signal === null && (e.code === 0 || e.code === 130 || e.code === 143)))
        .catch((err: unknown) => console.error(`[hazelcast] could not keep the CDS archive: ${String(err)}`))
        .finally(() => cdsPending.delete(done));
      cdsPending.add(done);
    }
    return proc;
  };

  const members: HazelcastMember[] = [];
  for (const [index, port] of ports.entries()) {
    const configFile = join(dir, `member-${index}.yaml`);
    await writeFile(configFile, yamlConfig(clusterName, port, ports, properties));
    const base = { index, port, address: `127.0.0.1:${port}`, configFile };
    members.push({ ...base, proc: launch(base) });
  }

  const running = (): HazelcastMember[] => members.filter((m) => m.proc.isRunning());

  const waitForClusterSize = async (size: number, waitMs = 30_000): Promise<void> => {
    const live = running();
    // Fail fast if a member dies while we wait.
    const died = new Promise<never>((_, reject) => {
      for (const m of live) {
        void m.proc.exited
          .then((e) =>
            reject(new Error(`member ${m.index} (${m.address}) exited (code=${e.code} signal=${e.signal})`)),
          )
          .catch(reject);
      }
    });
    let dead = false;
    died.catch(() => {
      dead = true; // also ends the polling below
    });
    try {
      await Promise.race([
        died,
        waitFor(
          `cluster ${clusterName} to have ${size} members`,
          () =>
            dead ||
            live.every(
              (m) => lastClusterSize(m.proc.output()) === size && /is STARTED/.test(m.proc.output()),
            ),
          waitMs,
          100,
        ),
      ]);
    } catch (err) {
      const tails = live
        .map((m) => `--- member ${m.index} (${m.address}) ---\n${m.proc.output().slice(-3000)}`)
        .join('\n');
      throw new Error(`${(err as Error).message}\n${tails}`);
    }
  };

  const health = async (i: number): Promise<HazelcastHealth> => {
    const m = members[i];
    if (!m) throw new Error(`no member ${i} (cluster has ${members.length})`);
    const res = await fetch(`http://${m.address}/hazelcast/health`, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) throw new Error(`GET /hazelcast/health on ${m.address}: HTTP ${res.status}`);
    return (await res.json()) as HazelcastHealth;
  };

  const waitForClusterSafe = async (waitMs = 60_000): Promise<void> => {
    // Migrations are planned shortly after a membership change: require the
    // safe state to be seen twice in a row, 300 ms apart.
    let safeSince = 0;
    await waitFor(
      `cluster ${clusterName} to be safe`,
      async () => {
        const live = running();
        const states = await Promise.all(live.map((m) => health(m.index)));
        const ok = states.every(
          (h) =>
            h.clusterSafe &&
            h.migrationQueueSize === 0 &&
            h.clusterSize === live.length &&
            h.nodeState === 'ACTIVE',
        );
        if (!ok) {
          safeSince = 0;
          return false;
        }
        safeSince ||= Date.now();
        return Date.now() - safeSince >= 300;
      },
      waitMs,
      150,
    );
  };

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await Promise.all(members.map((m) => m.proc.stop(15_000)));
      await Promise.all([...cdsPending]);
      await rm(dir, { recursive: true, force: true });
      cancelDirCleanup();
    })();
    return stopping;
  };

  const stopMember = async (i: number, signal: 'SIGKILL' | 'SIGTERM' = 'SIGTERM'): Promise<void> => {
    const m = members[i];
    if (!m) throw new Error(`no member ${i} (cluster has ${members.length})`);
    if (signal === 'SIGKILL') {
      m.proc.kill('SIGKILL');
      await m.proc.exited;
    } else {
      await m.proc.stop(15_000);
    }
  };

  const restartMember = async (i: number, waitMs = 60_000): Promise<void> => {
    const m = members[i];
    if (!m) throw new Error(`no member ${i} (cluster has ${members.length})`);
    if (m.proc.isRunning()) throw new Error(`member ${i} (${m.address}) is still running`);
    const deadline = Date.now() + waitMs;
    m.proc = launch(m);
    await waitForClusterSize(running().length, waitMs);
    await waitForClusterSafe(Math.max(deadline - Date.now(), 1000));
  };

  try {
    await waitForClusterSize(count, timeoutMs);
  } catch (err) {
    const bindFailed = members.some((m) => BIND_FAILURE_RE.test(m.proc.output()));
    await stop();
    if (bindFailed) throw new PortInUseError((err as Error).message);
    throw new Error(`Hazelcast cluster ${clusterName} did not form: ${(err as Error).message}`);
  }

  return {
    clusterName,
    members,
    addresses: () => running().map((m) => m.address),
    stopMember,
    restartMember,
    waitForClusterSize,
    health,
    waitForClusterSafe,
    stop,
  };
}

/* ------------------------------------------------------------------------ */
/* CLI                                                                       */
/* ------------------------------------------------------------------------ */

function argValue(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function cli(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (cmd === 'fetch') {
    const t0 = Date.now();
    const jar = await ensureHazelcastJar();
    console.log(JSON.stringify({ jar, ms: Date.now() - t0 }));
    return;
  }
  if (cmd === 'start') {
    const members = Number(argValue(rest, '--members') ?? '2');
    const heap = argValue(rest, '--heap');
    const clusterName = argValue(rest, '--cluster-name');
    const logDir = argValue(rest, '--log-dir');
    const t0 = Date.now();
    const cluster = await startHazelcastCluster({
      members,
      ...(heap ? { heapMb: Number(heap) } : {}),
      ...(clusterName ? { clusterName } : {}),
      ...(logDir ? { logDir } : {}),
    });
    console.log(
      JSON.stringify({
        clusterName: cluster.clusterName,
        addresses: cluster.addresses(),
        pids: cluster.members.map((m) => m.proc.pid),
        startMs: Date.now() - t0,
      }),
    );
    let shuttingDown = false;
    const shutdown = (sig: string): void => {
      if (shuttingDown) return;
      shuttingDown = true;
      console.error(`[hazelcast] ${sig}: stopping members...`);
      cluster.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          console.error(err);
          process.exit(1);
        },
      );
    };
    process.on('SIGINT', () => shutdown('SIGINT'));
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    // Report members that die on their own.
    for (const m of cluster.members) {
      void m.proc.exited
        .then((e) => {
          if (!shuttingDown)
            console.error(`[hazelcast] member ${m.index} (${m.address}) exited: ${JSON.stringify(e)}`);
        })
        .catch((err: unknown) => console.error(`[hazelcast] member ${m.index}: ${String(err)}`));
    }
    return;
  }
  console.error(
    'usage: tsx tests/infra/hazelcast.ts fetch\n' +
      '       tsx tests/infra/hazelcast.ts start [--members N] [--cluster-name NAME] [--heap MB] [--log-dir DIR]',
  );
  process.exitCode = 2;
}

if (isEntryPoint(import.meta.url)) {
  cli(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
