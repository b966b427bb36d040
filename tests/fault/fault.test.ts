/**
 * Fault injection behind a real load balancer: 2 Hazelcast members, FerretDB, 3 backend
 * processes (the product's main.ts) and HAProxy checking `/ready`. In every scenario 200 probe
 * clients in 10 rooms send through HAProxy while something breaks, and the probe's verdict
 * (lost = duplicates = outOfOrder = 0, every acked message stored once) is what is asserted.
 */
import { loadavg } from 'node:os';
import { expect } from 'chai';
import { waitFor } from '../infra/proc.js';
import { FaultStack } from './fault-stack.js';
import { newcomerJoin } from './newcomer.js';
import { type ProbeVerdict, startProbe, summary } from './probe-process.js';

const CLIENTS = 200;
const ROOMS = 10;
const RATE = 100;
/** terminationGracePeriodSeconds of k8s/: a drain must be over well before it. */
const GRACE_MS = 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function expectClean(
  name: string,
  code: number | null,
  v: ProbeVerdict,
  extra: Record<string, unknown> = {},
): void {
  console.log(`      ${summary(name, v, extra)}`);
  if (v.violations.length > 0) console.log(`      violations: ${JSON.stringify(v.violations, null, 1)}`);
  expect(v.reasons, 'probe reasons').to.deep.equal([]);
  expect(v.lost, 'lost').to.equal(0);
  expect(v.duplicates, 'duplicates').to.equal(0);
  expect(v.outOfOrder, 'outOfOrder').to.equal(0);
  expect(v.acked, 'acked').to.be.greaterThan(0);
  expect(v.delivered, 'delivered').to.equal(v.expected);
  expect(code, 'probe exit code').to.equal(0);
}

/** 200 probe clients sending through HAProxy; resolves once all of them joined. */
async function underLoad(durationS: number, settleS = 60, roomPrefix?: string) {
  const probe = startProbe(stack.lb.url, {
    clients: CLIENTS,
    rooms: ROOMS,
    rate: RATE,
    durationS,
    settleS,
    ...(roomPrefix ? { roomPrefix } : {}),
  });
  await probe.running();
  return probe;
}

/** The running slot with the most probe clients on it (HAProxy's current sessions). */
async function busiestSlot(): Promise<number> {
  const servers = await stack.lb.servers();
  const running = new Set(stack.running().map((s) => s.port));
  const best = servers.filter((s) => running.has(s.port)).sort((a, b) => b.sessions - a.sessions)[0]!;
  return stack.slots.findIndex((s) => s.port === best.port);
}

let stack: FaultStack;

describe('fault tolerance behind HAProxy (2 Hazelcast members, FerretDB, 3 backends, 200 clients)', function () {
  this.timeout(240_000);

  // A fresh stack per scenario: each starts from 3 ready backends, 2 members and an empty
  // database, whatever the previous one broke (see docs/operations.md on what carries over).
  beforeEach(async function () {
    this.timeout(180_000);
    stack = await FaultStack.start({ slots: 4, running: 3 });
  });

  afterEach(async function () {
    this.timeout(60_000);
    if (this.currentTest?.state === 'failed' && stack) console.log(stack.warningSummary());
    await stack?.stop();
  });

  it('kill-pod: a backend SIGKILLed under load; its clients recover through HAProxy', async () => {
    const probe = await underLoad(20);
    await sleep(5_000);
    const victim = await busiestSlot();
    const victimNode = stack.slots[victim]!.nodeId!;
    await stack.kill(victim);
    const { code, verdict } = await probe.result();
    expectClean('kill-pod', code, verdict, { killedNodeClients: verdict.nodes.start[victimNode] ?? 0 });
    expect(verdict.nodes.start[victimNode] ?? 0, 'clients on the killed node').to.be.greaterThan(0);
    expect(verdict.reconnects, 'reconnects').to.be.at.least(verdict.nodes.start[victimNode] ?? 1);
    expect(verdict.nodes.end[victimNode] ?? 0, 'clients left on the killed node').to.equal(0);
    // The survivors found the killed node's bus port refusing and dropped it at once, rather than
    // leaving its rooms without an owner until its lease lapsed (docs/operations.md, Crashes).
    const dropped = stack
      .running()
      .filter((s) =>
        (s.proc?.output() ?? '')
          .split('\n')
          .some(
            (l) => l.includes('node unreachable: dropped before its lease lapses') && l.includes(victimNode),
          ),
      );
    expect(
      dropped.length,
      'survivors that dropped the killed node before its lease lapsed',
    ).to.be.greaterThan(0);
  });

  it('scale-down: PreStop + SIGTERM under load; the node drains, exits 0 in time, no client sees an error', async () => {
    const probe = await underLoad(20);
    await sleep(5_000);
    const victim = await busiestSlot();
    const victimNode = stack.slots[victim]!.nodeId!;
    const { exit, ms } = await stack.terminate(victim);
    const report = stack.drainReport(victim);
    const { code, verdict } = await probe.result();
    expectClean('scale-down', code, verdict, { exitCode: exit.code, shutdownMs: ms, drain: report });
    expect(exit.code, 'exit code of the drained node').to.equal(0);
    expect(ms, 'PreStop + drain, against the grace period').to.be.below(GRACE_MS);
    expect(report, 'drain report').to.not.equal(undefined);
    expect(report!.sessionsAtStart, 'sessions on the node when the drain began').to.be.greaterThan(0);
    expect(report!.sessionsLeft, 'sessions left when the node left the cluster').to.equal(0);
    expect(verdict.failed, 'sends refused').to.equal(0);
    expect(verdict.nodes.end[victimNode] ?? 0, 'clients left on the drained node').to.equal(0);
  });

  // Each restarted node becomes the owner of some rooms with an empty cache: this is the scenario
  // that showed reads must go to the owner (see docs/chat.md) and retries settle from the room's tail.
  it('rolling restart: all 3 nodes drained and restarted one after another under load', async function () {
    this.timeout(420_000);
    const probe = await underLoad(45);
    const before = stack.slots.slice(0, 3).map((s) => s.nodeId!);
    const exits: (number | null)[] = [];
    // How long each node took to go and to come back, and how busy the machine was: the
    // figures that tell a slow product from a crowded machine when this scenario is slow.
    const steps: { drainMs: number; startMs: number }[] = [];
    for (const i of [0, 1, 2]) {
      await sleep(2_000);
      const { exit, ms } = await stack.terminate(i);
      exits.push(exit.code);
      const t0 = Date.now();
      await stack.startBackend(i);
      steps.push({ drainMs: ms, startMs: Date.now() - t0 });
    }
    const { code, verdict } = await probe.result();
    expectClean('rolling restart', code, verdict, {
      exitCodes: exits,
      steps,
      loadAvg1m: Number(loadavg()[0]!.toFixed(2)),
    });
    // Over issue 20's goals (not asserted: no timed assertions): what the nodes complained of.
    if (verdict.latencyMs.p99 > 1_000 || verdict.maxDeliveryGapMs > 2_000)
      console.log(stack.warningSummary());
    expect(exits, 'exit codes of the drained nodes').to.deep.equal([0, 0, 0]);
    expect(verdict.failed, 'sends refused').to.equal(0);
    for (const old of before) expect(verdict.nodes.end[old] ?? 0, `clients left on ${old}`).to.equal(0);
  });

  it('one Hazelcast member SIGKILLed under load', async () => {
    const probe = await underLoad(20);
    await sleep(5_000);
    await stack.hz.stopMember(1, 'SIGKILL');
    const { code, verdict } = await probe.result();
    expectClean('hazelcast member killed', code, verdict);
    for (const slot of stack.running()) {
      const ready = await fetch(`http://127.0.0.1:${slot.port}/ready`);
      expect(ready.status, `backend-${slot.index} ready on the surviving member`).to.equal(200);
    }
  });

  it('database stopped for 10 s under load: nodes stay in rotation and say so, newcomers still join, nothing acked is lost', async () => {
    const probe = await underLoad(25, 90, 'outage');
    await sleep(5_000);
    await stack.db.proc.stop();
    const stoppedAt = Date.now();
    // The database is shared: unready nodes would all leave HAProxy together. Each stays ready
    // and reports the store degraded.
    await waitFor(
      'every node to report the store degraded on /ready',
      async () => {
        for (const s of stack.running()) {
          const res = await fetch(`http://127.0.0.1:${s.port}/ready`);
          const body = (await res.json()) as { degraded?: string[] };
          if (res.status !== 200 || !body.degraded?.includes('store')) return false;
        }
        return true;
      },
      15_000,
      200,
    );
    // A client arriving during the outage gets in through HAProxy and joins an active room: its
    // owner's tail answers.
    const joined = await newcomerJoin(stack.lb.url, 'outage-3', 8_000);
    expect(joined, 'lastSeq of a join during the outage').to.be.a('number').greaterThan(0);
    await sleep(Math.max(0, 10_000 - (Date.now() - stoppedAt)));
    await stack.db.restart();
    // The database accepts connections again: the probe says how long everything sent before
    // this moment took to be acked and reach every member (issue 20's goal: 5 s).
    probe.proc.kill('SIGUSR2');
    const { code, verdict } = await probe.result();
    expectClean('database stopped 10 s', code, verdict, { backlogDrainedMs: verdict.mark?.drainedMs });
    expect(verdict.mark, 'the mark at the return of the database').to.not.equal(undefined);
    await waitFor(
      'every node ready and no longer degraded',
      async () => {
        for (const s of stack.running()) {
          const res = await fetch(`http://127.0.0.1:${s.port}/ready`);
          const body = (await res.json()) as { degraded?: string[] };
          if (!res.ok || (body.degraded?.length ?? 1) > 0) return false;
        }
        return true;
      },
      30_000,
      200,
    );
  });

  it('scale-up: a 4th node added under load; new connections reach it', async () => {
    const probe = await underLoad(20);
    await sleep(3_000);
    const added = await stack.startBackend(3);
    const late = startProbe(stack.lb.url, { clients: 40, rooms: 4, rate: 20, durationS: 5, settleS: 30 });
    await late.running();
    const [main, second] = await Promise.all([probe.result(), late.result()]);
    expectClean('scale-up', main.code, main.verdict);
    expectClean('scale-up (clients after)', second.code, second.verdict, {
      onNewNode: second.verdict.nodes.start[added.nodeId!] ?? 0,
    });
    expect(second.verdict.nodes.start[added.nodeId!] ?? 0, 'new clients on the new node').to.be.greaterThan(
      0,
    );
    await stack.terminate(3);
  });
});
