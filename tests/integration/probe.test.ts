import { expect } from 'chai';
import { fileURLToPath } from 'node:url';
import type { ProbeReport } from '../../messages-lib/src/probe/index.js';
import { runProbe } from '../../messages-lib/src/probe/run.js';
import { ClusterFixture } from '../helpers/cluster-fixture.js';
import { type ManagedProcess, startProcess } from '../infra/proc.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const cli = fileURLToPath(new URL('../../messages-lib/src/probe/cli.ts', import.meta.url));

/** The probe CLI as an operator runs it (from source, so the test needs no build step). */
function startProbe(args: string[]): ManagedProcess {
  return startProcess('probe', process.execPath, ['--import', 'tsx', cli, '--json-only', ...args], {
    cwd: repoRoot,
  });
}

async function finish(probe: ManagedProcess): Promise<{ code: number | null; report: ProbeReport }> {
  const { code } = await probe.exited;
  const line = probe
    .output()
    .split('\n')
    .find((l) => l.startsWith('{"ok":'));
  expect(line, `the JSON line; output:\n${probe.output().slice(-3000)}`).to.be.a('string');
  return { code, report: JSON.parse(line!) as ProbeReport };
}

/**
 * switchboard-probe against 2 real clustered backends (Hazelcast members, FerretDB): a clean run
 * passes with exit 0, and a run during which one node is SIGKILLed still loses and duplicates
 * nothing: the killed node's clients move to the other URL of their list.
 */
describe('switchboard-probe on 2 clustered nodes', function () {
  this.timeout(180_000);
  let fx: ClusterFixture;

  before(async function () {
    this.timeout(300_000);
    fx = await ClusterFixture.start({ nodes: 2, env: { CLUSTER_LEASE_MS: '3000' } });
    await fx.waitForSubscribers('chat.send', fx.nodes);
  });

  after(async function () {
    this.timeout(60_000);
    await fx?.stop();
  });

  it('50 clients over both nodes: exit 0, every acked message delivered once, in order, stored once', async () => {
    const urls = fx.nodes.map((n) => n.httpUrl).join(',');
    const probe = startProbe([
      '--url',
      urls,
      '--clients',
      '50',
      '--rooms',
      '2',
      '--rate',
      '25',
      '--duration',
      '4',
    ]);
    const { code, report } = await finish(probe);
    expect(report.reasons, 'reasons').to.deep.equal([]);
    expect(code).to.equal(0);
    expect(report).to.include({
      ok: true,
      clients: 50,
      rooms: 2,
      sent: 100,
      acked: 100,
      failed: 0,
      unacked: 0,
    });
    expect(report).to.include({ lost: 0, duplicates: 0, outOfOrder: 0, reconnects: 0 });
    // 50 messages per room, 25 clients in each: every client got every message of its room.
    expect(report.expected).to.equal(2 * 50 * 25);
    expect(report.delivered).to.equal(report.expected);
    expect(report.store).to.include({ checked: true, messages: 100 });
    expect(report.nodes.start).to.deep.equal({ [fx.nodes[0]!.nodeId]: 25, [fx.nodes[1]!.nodeId]: 25 });
  });

  it('checks the stored history while it runs (then forgets what it checked): the same clean verdict', async () => {
    const report = await runProbe({
      urls: fx.nodes.map((n) => n.httpUrl),
      clients: 20,
      rooms: 2,
      rate: 100,
      durationS: 6,
      settleS: 30,
      connectTimeoutS: 30,
      storeCheckAt: 50,
      progressEveryMs: 200,
      log: () => {},
    });
    expect(report.reasons, 'reasons').to.deep.equal([]);
    expect(report).to.include({ ok: true, sent: 600, acked: 600, lost: 0, duplicates: 0, outOfOrder: 0 });
    expect(report.store).to.include({ checked: true, messages: 600, lost: 0, duplicates: 0 });
    expect(report.store.checkedDuringRun, 'checked while sending').to.be.at.least(400);
  });

  it('a node SIGKILLed mid-run: its clients reconnect to the other node; nothing lost or duplicated', async () => {
    const [victim, survivor] = fx.nodes as [(typeof fx.nodes)[0], (typeof fx.nodes)[0]];
    const probe = startProbe([
      '--url',
      `${victim.httpUrl},${survivor.httpUrl}`,
      '--clients',
      '50',
      '--rooms',
      '2',
      '--rate',
      '25',
      '--duration',
      '8',
    ]);
    await probe.waitForOutput('probe: running', 60_000);
    await probe.waitForOutput(/probe: sending t=[2-9]/, 20_000); // some traffic before the kill
    victim.proc.kill('SIGKILL');
    await victim.proc.exited;
    const { code, report } = await finish(probe);
    expect(report.nodes.start).to.deep.equal({ [victim.nodeId]: 25, [survivor.nodeId]: 25 });
    expect(report.lost, JSON.stringify(report.violations)).to.equal(0);
    expect(report.duplicates, JSON.stringify(report.violations)).to.equal(0);
    expect(report.outOfOrder).to.equal(0);
    expect(report.reconnects, 'the victim’s 25 clients reconnected').to.be.at.least(25);
    expect(report.rejoinMs.count, 'the victim’s 25 clients joined their rooms again').to.be.at.least(25);
    expect(report.nodes.end).to.deep.equal({ [survivor.nodeId]: 50 });
    expect(report.acked + report.failed).to.equal(report.sent);
    expect(report.store.checked).to.equal(true);
    expect(report.maxDeliveryGapMs, 'the kill interrupted someone').to.be.greaterThan(0);
    expect(report.reasons).to.deep.equal([]);
    expect(code).to.equal(0);
  });
});
