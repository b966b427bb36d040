/**
 * The Kubernetes tier: Switchboard deployed with k8s/overlays/local on a real one-node
 * Kubernetes 1.34 (tests/infra/kube: apiserver, kubelet, containerd, in a network namespace of
 * its own), driven by the same deploy script and demos users run against minikube.
 *
 * With CI=true a missing prerequisite fails the tier with its name; elsewhere the tier is
 * skipped with the reason printed. Measured figures go to stdout as `k8s figure: ...` lines.
 */
import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, ensureDir } from '../infra/cache.js';
import {
  clusterDown,
  clusterUp,
  kubectl,
  leftovers,
  missingPrerequisite,
  provision,
  run,
} from '../infra/kube/cluster.js';
import {
  BACKEND,
  CANARY,
  containerPids,
  diagnostics,
  emptyMessageStore,
  GRPC_TARGET,
  inClusterNet,
  k,
  lastJson,
  NS,
  PodRecorder,
  readyBackendPods,
  ROOT,
  SERVICE_URL,
  startProbe,
  until,
} from './helpers.js';
import type { RecordedPod, Verdict } from './helpers.js';

const figures: Record<string, string> = {};
function figure(name: string, value: string): void {
  figures[name] = value;
  console.log(`      k8s figure: ${name}: ${value}`);
}
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** Runs one of k8s/scripts with TARGET=local; resolves with its stdout (bounded). */
async function script(
  name: string,
  env: Record<string, string>,
  timeoutMs: number,
  onLine?: (line: string) => void,
): Promise<string> {
  const r = await run('bash', [join(ROOT, 'k8s', 'scripts', name)], {
    timeoutMs,
    env: { TARGET: 'local', ...env },
    ...(onLine ? { onLine } : {}),
  });
  if (r.code !== 0)
    throw new Error(`${name} exited ${r.code}:\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
  return r.stdout;
}

/** The verdict a demo prints last on stdout, after `== probe verdict (<name>): exit 0`. */
function demoVerdict(stdout: string, name: string): Verdict {
  const at = stdout.indexOf(`== probe verdict (${name}): exit 0`);
  expect(at, `the demo prints a clean verdict for ${name}:\n${stdout.slice(-3000)}`).to.be.greaterThan(-1);
  return lastJson<Verdict>(stdout.slice(at));
}

function expectClean(v: Verdict, what: string): void {
  const summary = JSON.stringify({ ...v, reasons: v.reasons.slice(0, 5) });
  expect(v.lost, `${what}: lost ${summary}`).to.equal(0);
  expect(v.duplicates, `${what}: duplicates ${summary}`).to.equal(0);
  expect(v.outOfOrder, `${what}: out of order ${summary}`).to.equal(0);
  expect(v.ok, `${what}: ${summary}`).to.equal(true);
  expect(v.acked, `${what}: every message acked`).to.equal(v.sent);
}

/** Waits until the Deployment has `n` ready pods and no terminating one (bounded). */
async function settled(min: number, timeoutMs: number): Promise<string[]> {
  return until(`${min} ready backend pods, none terminating`, timeoutMs, async () => {
    const all = await k(['-n', NS, 'get', 'pods', '-l', BACKEND, '-o', 'name']);
    const ready = await readyBackendPods();
    const count = all.split('\n').filter(Boolean).length;
    return ready.length >= min && count === ready.length ? ready : undefined;
  });
}

interface CanaryCounts {
  sent: number;
  acked: number;
  delivered: number;
  lost: number;
  duplicates: number;
  outOfOrder: number;
  reconnects: number;
}

/** An instant query to the cluster's Prometheus, from inside the cluster's network. */
async function prometheus(
  query: string,
): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const r = await inClusterNet(
    'curl',
    ['-fsS', '--max-time', '5', `http://10.200.0.1:9090/api/v1/query?query=${encodeURIComponent(query)}`],
    10_000,
  );
  return (
    JSON.parse(r.stdout) as {
      data: { result: { metric: Record<string, string>; value: [number, string] }[] };
    }
  ).data.result;
}

/** The canary's counters as Prometheus last scraped them (job switchboard-canary). */
async function canaryCounts(): Promise<CanaryCounts | undefined> {
  const result = await prometheus(
    '{job="switchboard-canary",__name__=~"switchboard_probe_(sent|acked|delivered|lost|duplicates|out_of_order|reconnects)_total"}',
  );
  const v = new Map(result.map((s) => [s.metric.__name__, Number(s.value[1])]));
  const get = (name: string): number | undefined => v.get(`switchboard_probe_${name}_total`);
  const counts = {
    sent: get('sent'),
    acked: get('acked'),
    delivered: get('delivered'),
    lost: get('lost'),
    duplicates: get('duplicates'),
    outOfOrder: get('out_of_order'),
    reconnects: get('reconnects'),
  };
  return Object.values(counts).every((n) => n !== undefined) ? (counts as CanaryCounts) : undefined;
}

describe('Kubernetes tier: Switchboard on a real one-node Kubernetes 1.34', function () {
  this.timeout(20 * 60_000);
  let up = false;

  before(async function () {
    const missing = missingPrerequisite();
    if (missing) {
      if (process.env.CI === 'true') throw new Error(`the Kubernetes tier needs ${missing}`);
      console.log(`      skipped: the Kubernetes tier needs ${missing}`);
      this.skip();
    }
    const t0 = Date.now();
    const p = await provision((l) => console.log(`      provision: ${l}`));
    figure('provisioning (binaries and images; cold = first run on a machine)', seconds(Date.now() - t0));
    const t1 = Date.now();
    up = true;
    await clusterUp(p);
    figure('cluster up (containerd to DNS, metrics and the custom metrics API)', seconds(Date.now() - t1));
    const t2 = Date.now();
    try {
      await script('deploy.sh', { TIMEOUT: '300s' }, 8 * 60_000);
    } catch (err) {
      console.log(await diagnostics());
      throw err;
    }
    figure('deploy.sh: apply to every workload ready', seconds(Date.now() - t2));
  });

  // Every scenario starts from an empty message store, as in the fault suite: the in-cluster
  // stand-in, FerretDB 1.24 on one CPU, scans the whole collection for every read
  // (docs/store.md), so messages left by earlier scenarios would only make the later ones slower,
  // whatever they test. The store's epoch (its own collection) stays.
  beforeEach(async function () {
    if (!up || this.currentTest?.title.startsWith('has every workload Ready')) return;
    const deleted = await emptyMessageStore();
    console.log(`      (message store emptied: ${deleted} messages of earlier scenarios)`);
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && up) console.log(await diagnostics());
  });

  after(async function () {
    if (Object.keys(figures).length > 0) {
      const file = join(ensureDir(join(cacheDir, 'kube')), 'figures.json');
      writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), figures }, null, 2));
    }
    if (up && process.env.SB_KEEP_CLUSTER !== '1') {
      await clusterDown();
      expect(await leftovers(), 'what the stopped cluster left behind').to.deep.equal([]);
    }
  });

  it('has every workload Ready from a cold start: backend, Hazelcast members, FerretDB, node', async function () {
    await k(['wait', '--for=condition=Ready', 'node', '--all', '--timeout=60s'], 70_000);
    const pods = JSON.parse(await k(['-n', NS, 'get', 'pods', '-o', 'json'])) as {
      items: {
        metadata: { name: string; labels: Record<string, string> };
        status: { conditions?: { type: string; status: string }[] };
      }[];
    };
    const ready = (p: (typeof pods.items)[number]): boolean =>
      p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
    const by = (name: string) =>
      pods.items.filter((p) => p.metadata.labels['app.kubernetes.io/name'] === name);
    expect(by('switchboard-backend').filter(ready).length, 'backend pods (HPA minReplicas 2)').to.be.at.least(
      2,
    );
    expect(by('hazelcast').filter(ready).length, 'Hazelcast members').to.equal(2);
    expect(by('mongodb').filter(ready).length, 'FerretDB (the mongodb StatefulSet)').to.equal(1);
    const readyz = await inClusterNet('curl', ['-fsS', '--max-time', '5', `${SERVICE_URL}/ready`], 10_000);
    expect(JSON.parse(readyz.stdout)).to.include({ status: 'ready' });
  });

  // The canary (k8s/canary) runs from here to the end, through every scenario below: an operator's
  // view of the deploys, kills and scale-downs those scenarios make.
  let canaryAtStart: CanaryCounts | undefined;
  it('runs the canary (k8s/canary): it chats through the Service and Prometheus scrapes its counters', async function () {
    await k(['apply', '-k', join(ROOT, 'k8s', 'canary')]);
    await k(['-n', NS, 'rollout', 'status', 'deployment/switchboard-canary', '--timeout=180s'], 200_000);
    canaryAtStart = await until('the canary delivering, as scraped by Prometheus', 120_000, async () => {
      const c = await canaryCounts();
      return c && c.delivered > 0 && c.acked > 0 ? c : undefined;
    });
    expect(canaryAtStart.lost, 'lost').to.equal(0);
    expect(canaryAtStart.duplicates, 'duplicates').to.equal(0);
    expect(canaryAtStart.outOfOrder, 'out of order').to.equal(0);
    figure('canary: first counts scraped', JSON.stringify(canaryAtStart));
  });

  it('chats through the Service: WebSocket clients, and gRPC over dns:/// on the headless Service', async function () {
    const ws = startProbe(
      ['--clients', '20', '--rooms', '4', '--rate', '20', '--duration', '10', '--settle', '3'],
      90_000,
    );
    const { code, verdict } = await ws.done;
    expect(code, JSON.stringify(verdict)).to.equal(0);
    expectClean(verdict, 'WebSocket probe');
    expect(verdict.delivered).to.be.greaterThan(0);

    const grpc = await inClusterNet(
      'node',
      ['--import', 'tsx', join(ROOT, 'tests', 'k8s-cluster', 'grpc-check.ts'), GRPC_TARGET, SERVICE_URL],
      120_000,
    );
    expect(grpc.code, `${grpc.stdout}\n${grpc.stderr}`).to.equal(0);
    const result = lastJson<{ ok: boolean; nodes: string[]; received: number; sent: number }>(grpc.stdout);
    expect(result.ok, grpc.stdout).to.equal(true);
    expect(result.received).to.equal(result.sent);
    const pods = await readyBackendPods();
    expect(
      result.nodes.length,
      `gRPC calls reached ${result.nodes.join(', ')} of ${pods.join(', ')}`,
    ).to.be.at.least(2);
  });

  it('enforces the NetworkPolicies: only the backend reaches Hazelcast and the database', async function () {
    const check =
      "const net=require('net'),dns=require('dns').promises;" +
      'const t=async(h,p)=>{let a;try{a=(await dns.lookup(h)).address}catch(e){return "dns:"+e.code}' +
      'return new Promise(r=>{const s=net.connect(p,a);s.setTimeout(3000);' +
      's.on("connect",()=>{s.destroy();r("open")});s.on("timeout",()=>{s.destroy();r("blocked")});' +
      's.on("error",e=>r("error:"+e.code))})};' +
      `(async()=>{console.log(JSON.stringify({hazelcast:await t("hazelcast-0.hazelcast.${NS}.svc.cluster.local",5701),` +
      `database:await t("mongodb-0.mongodb.${NS}.svc.cluster.local",27017)}))})()`;
    const fromBackend = JSON.parse(
      await k(
        ['-n', NS, 'exec', 'deploy/switchboard-backend', '-c', 'backend', '--', 'node', '-e', check],
        30_000,
      ),
    ) as Record<string, string>;
    expect(fromBackend, 'from a backend pod').to.deep.equal({ hazelcast: 'open', database: 'open' });

    await kubectl(['-n', NS, 'delete', 'pod', 'np-outsider', '--ignore-not-found', '--wait=true'], {
      timeoutMs: 60_000,
    });
    await k([
      '-n',
      NS,
      'run',
      'np-outsider',
      '--image=switchboard:dev',
      '--image-pull-policy=IfNotPresent',
      '--restart=Never',
      '--labels=app.kubernetes.io/name=outsider',
      '--command',
      '--',
      'node',
      '-e',
      check,
    ]);
    await until('np-outsider finished', 60_000, async () => {
      const phase = await k(['-n', NS, 'get', 'pod', 'np-outsider', '-o', 'jsonpath={.status.phase}']);
      return phase === 'Succeeded' || phase === 'Failed' ? phase : undefined;
    });
    const fromOutsider = lastJson<Record<string, string>>(await k(['-n', NS, 'logs', 'np-outsider']));
    await k(['-n', NS, 'delete', 'pod', 'np-outsider', '--wait=false']);
    // kube-router rejects (ECONNREFUSED) or drops (timeout); the same ports are open to the backend.
    const denied = ['blocked', 'error:ECONNREFUSED', 'error:EHOSTUNREACH'];
    const seen = `from a pod without the backend labels: ${JSON.stringify(fromOutsider)}`;
    expect(denied, seen).to.include(fromOutsider.hazelcast);
    expect(denied, seen).to.include(fromOutsider.database);
  });

  it('kill-pod demo: backend pods deleted under 200 clients in 10 rooms; nothing lost, doubled or reordered', async function () {
    const out = await script(
      'demo-kill-pod.sh',
      { CLIENTS: '200', ROOMS: '10', RATE: '40', DURATION: '75', KILL_INTERVAL: '20', SETTLE: '15' },
      6 * 60_000,
    );
    console.log(
      out
        .split('\n')
        .filter((l) => /deleted|== /.test(l))
        .map((l) => `      ${l}`)
        .join('\n'),
    );
    const deleted = Number(/== deleted (\d+) pods/.exec(out)?.[1] ?? 0);
    expect(deleted, 'pods deleted during the demo').to.be.at.least(2);
    const v = demoVerdict(out, 'kill-pod');
    expectClean(v, 'kill-pod');
    expect(v.reconnects, 'clients moved by the drains').to.be.greaterThan(0);
    figure(
      'kill-pod: longest pause a client saw (pod deletion to caught up), 200 clients',
      `${v.maxDeliveryGapMs} ms`,
    );
    await settled(2, 120_000);
  });

  it('rolling restart under load: every pod replaced; nothing lost or doubled', async function () {
    const before = await readyBackendPods();
    const probe = startProbe(
      ['--clients', '200', '--rooms', '10', '--rate', '40', '--duration', '70', '--settle', '15'],
      4 * 60_000,
    );
    await probe.running;
    const t0 = Date.now();
    await k(['-n', NS, 'rollout', 'restart', 'deployment/switchboard-backend']);
    await k(['-n', NS, 'rollout', 'status', 'deployment/switchboard-backend', '--timeout=240s'], 250_000);
    figure(`rolling restart of ${before.length} pods under load`, seconds(Date.now() - t0));
    const { code, verdict } = await probe.done;
    expect(code, JSON.stringify(verdict)).to.equal(0);
    expectClean(verdict, 'rolling restart');
    figure('rolling restart: longest pause a client saw, 200 clients', `${verdict.maxDeliveryGapMs} ms`);
    const after = await settled(2, 120_000);
    expect(
      after.filter((p) => before.includes(p)),
      'no pod of before the restart is left',
    ).to.deep.equal([]);
  });

  it('a backend container SIGKILLed under load (a crash: no PreStop, no drain): nothing lost or doubled; it restarts', async function () {
    const [victim] = await settled(2, 120_000);
    const container = (field: string): Promise<string> =>
      k(['-n', NS, 'get', 'pod', victim!, '-o', `jsonpath={.status.containerStatuses[0].${field}}`]);
    const restarts = async (): Promise<number> => Number(await container('restartCount'));
    const restartsBefore = await restarts();
    const probe = startProbe(
      ['--clients', '200', '--rooms', '10', '--rate', '40', '--duration', '60', '--settle', '15'],
      4 * 60_000,
    );
    await probe.running;
    await new Promise((r) => setTimeout(r, 10_000)); // clients on every pod, messages in flight
    const pids = await containerPids(victim!);
    expect(pids, `${victim}: its container's processes, from its pod cgroup`).to.not.deep.equal([]);
    const t0 = Date.now();
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    await until(`${victim} restarted by the kubelet and ready`, 120_000, async () =>
      (await restarts()) > restartsBefore && (await readyBackendPods()).includes(victim!) ? true : undefined,
    );
    figure('backend container SIGKILLed to restarted and ready', seconds(Date.now() - t0));
    const lastExit = await container('lastState.terminated.exitCode');
    expect(lastExit, 'the container died of SIGKILL (128 + 9)').to.equal('137');
    const { code, verdict } = await probe.done;
    expect(code, JSON.stringify(verdict)).to.equal(0);
    expectClean(verdict, 'backend container SIGKILLed');
    expect(verdict.reconnects, "the killed pod's clients reconnected").to.be.greaterThan(0);
    figure('SIGKILL: longest pause a client saw, 200 clients', `${verdict.maxDeliveryGapMs} ms`);
  });

  it('a Hazelcast member pod deleted under load: nothing lost or doubled; the member comes back', async function () {
    const probe = startProbe(
      ['--clients', '200', '--rooms', '10', '--rate', '40', '--duration', '60', '--settle', '15'],
      4 * 60_000,
    );
    await probe.running;
    const t0 = Date.now();
    await k(['-n', NS, 'delete', 'pod', 'hazelcast-1', '--wait=false']);
    await until('hazelcast-1 recreated', 60_000, async () => {
      const uid = await k([
        '-n',
        NS,
        'get',
        'pod',
        'hazelcast-1',
        '-o',
        'jsonpath={.metadata.deletionTimestamp}',
      ]);
      return uid === '' ? true : undefined;
    });
    await k(['-n', NS, 'rollout', 'status', 'statefulset/hazelcast', '--timeout=180s'], 190_000);
    figure('Hazelcast member deleted to StatefulSet ready again', seconds(Date.now() - t0));
    const { code, verdict } = await probe.done;
    expect(code, JSON.stringify(verdict)).to.equal(0);
    expectClean(verdict, 'Hazelcast member deleted');
    figure(
      'Hazelcast member deleted: longest pause a client saw, 200 clients',
      `${verdict.maxDeliveryGapMs} ms`,
    );
  });

  it('Prometheus scrapes every backend pod; the messages/s metric is on the custom metrics API', async function () {
    const pods = await settled(2, 120_000);
    const series = await until('Prometheus has a healthy target per backend pod', 90_000, async () => {
      const result = await prometheus('up{job="switchboard-backend"}');
      const up = result.filter((s) => s.value[1] === '1').map((s) => s.metric.pod!);
      return pods.every((p) => up.includes(p)) ? up : undefined;
    });
    expect(series).to.include.members(pods);
    const metric = await until('the custom metric for every backend pod', 90_000, async () => {
      const raw = await k([
        'get',
        '--raw',
        `/apis/custom.metrics.k8s.io/v1beta2/namespaces/${NS}/pods/*/switchboard_chat_messages_in_per_second`,
      ]);
      const list = JSON.parse(raw) as { items: { describedObject: { name: string } }[] };
      const names = list.items.map((i) => i.describedObject.name);
      return pods.every((p) => names.includes(p)) ? names : undefined;
    });
    expect(metric).to.include.members(pods);
  });

  it('scale-down demo: the HPA scales up on load and back down; every removed pod drained cleanly', async function () {
    const recorder = new PodRecorder();
    recorder.start();
    let out: string;
    const t0 = Date.now();
    // When each line of the demo arrived: the demo samples replicas every 10 s.
    const seen: { t: number; line: string }[] = [];
    try {
      out = await script(
        'demo-scale-down.sh',
        { LOAD_CLIENTS: '200', LOAD_RATE: '150', LOAD_SECONDS: '90', SCALE_TIMEOUT: '180' },
        9 * 60_000,
        (line) => seen.push({ t: Date.now(), line }),
      );
    } finally {
      await new Promise((r) => setTimeout(r, 3000));
      recorder.stop();
    }
    console.log(
      out
        .split('\n')
        .filter((l) => /replicas|== /.test(l))
        .map((l) => `      ${l}`)
        .join('\n'),
    );
    const peak = Number(/peak (\d+) replicas \(min (\d+)\)/.exec(out)?.[1] ?? 0);
    expect(peak, 'the HPA scaled up').to.be.greaterThan(2);
    const v = demoVerdict(out, 'check');
    expectClean(v, 'scale-down checking probe');
    figure('scale-down demo total (90 s of load, then back to min)', seconds(Date.now() - t0));
    const when = (re: RegExp): number | undefined => seen.find((s) => re.test(s.line))?.t;
    const loadStart = when(/^== load probe/);
    const atPeak = when(new RegExp(`load: ready replicas ${peak};`));
    const loadStop = when(/^== load stopped/);
    const backAtMin = when(/^== replicas now/);
    if (loadStart && atPeak)
      figure(
        `scale-up 2 -> ${peak} ready pods after the load started (10 s sampling)`,
        seconds(atPeak - loadStart),
      );
    if (loadStop && backAtMin)
      figure(`scale-down ${peak} -> 2 after the load stopped (10 s sampling)`, seconds(backAtMin - loadStop));

    const removed = [...recorder.pods.values()].filter((p) => p.end);
    expect(removed.length, 'pods removed by the scale-down').to.be.at.least(peak - 2);
    const drains: number[] = [];
    for (const pod of removed) {
      const lines = pod.logs.split('\n');
      const at = (re: RegExp): number => lines.findIndex((l) => re.test(l));
      const notReady = at(/not ready: refusing new connections/);
      const draining = at(/shutting down: draining/);
      const complete = at(/drain: complete in/);
      expect(
        notReady,
        `${pod.name}: /prestop ran (readiness off) before SIGTERM\n${pod.logs.slice(-2000)}`,
      ).to.be.greaterThan(-1);
      expect(draining, `${pod.name}: SIGTERM after /prestop`).to.be.greaterThan(notReady);
      expect(complete, `${pod.name}: the drain completed`).to.be.greaterThan(draining);
      expect(pod.end, `${pod.name}: exit code 0, not SIGKILLed`).to.deep.include({ exitCode: 0 });
      expect(pod.end?.reason, `${pod.name}`).to.not.equal('OOMKilled');
      drains.push(Number(/drain: complete in (\d+) ms/.exec(lines[complete]!)?.[1] ?? NaN));
    }
    const events = await k([
      '-n',
      NS,
      'get',
      'events',
      '-o',
      'jsonpath={range .items[*]}{.reason}{"\\n"}{end}',
    ]);
    expect(events.split('\n'), 'no failed PreStop hook').to.not.include('FailedPreStopHook');
    figure('scale-down: peak replicas', String(peak));
    figure('drain durations (SIGTERM to exit) of the removed pods', drains.map((d) => `${d} ms`).join(', '));
  });

  it('the canary saw every scenario through: nothing lost, doubled or reordered; SIGTERM ends it with exit 0', async function () {
    expect(canaryAtStart, 'the canary ran from the start').to.not.equal(undefined);
    // Prometheus scrapes the canary every 15 s: wait for a scrape taken after the last scenario.
    const last = await canaryCounts();
    const counts = await until('a canary scrape after the scenarios', 60_000, async () => {
      const c = await canaryCounts();
      return c && last && c.sent > last.sent ? c : undefined;
    });
    figure('canary: counts at the end', JSON.stringify(counts));
    expect(counts.lost, `lost ${JSON.stringify(counts)}`).to.equal(0);
    expect(counts.duplicates, 'duplicates').to.equal(0);
    expect(counts.outOfOrder, 'out of order').to.equal(0);
    expect(counts.acked, 'the canary kept getting acks').to.be.greaterThan(canaryAtStart!.acked);
    expect(counts.delivered, 'and deliveries').to.be.greaterThan(canaryAtStart!.delivered);
    // The rolling restart replaced every backend pod: every canary client was moved at least once.
    expect(counts.reconnects, "the canary's clients reconnected through the restarts").to.be.at.least(6);

    const recorder = new PodRecorder(CANARY, 'canary');
    recorder.start();
    let ended: RecordedPod | undefined;
    try {
      await until('the canary pod followed', 30_000, async () => (recorder.pods.size > 0 ? true : undefined));
      await k(
        ['-n', NS, 'delete', 'deployment', 'switchboard-canary', '--cascade=foreground', '--timeout=90s'],
        100_000,
      );
      ended = await until('the canary pod ended', 60_000, async () =>
        [...recorder.pods.values()].find((p) => p.end),
      );
      await new Promise((r) => setTimeout(r, 2000)); // the last lines of its log
    } finally {
      recorder.stop();
    }
    expect(ended.end, `the canary exited 0 on SIGTERM\n${ended.logs.slice(-2000)}`).to.deep.include({
      exitCode: 0,
    });
    const report = lastJson<{ ok: boolean; lost: number; duplicates: number; outOfOrder: number }>(
      ended.logs,
    );
    expect(report, 'its final report').to.include({ ok: true, lost: 0, duplicates: 0, outOfOrder: 0 });
  });
});
