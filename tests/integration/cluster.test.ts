import net from 'node:net';
import { expect } from 'chai';
import type { BusNode } from '../helpers/bus-nodes.js';
import { ClusterFixture } from '../helpers/cluster-fixture.js';
import { waitFor } from '../infra/proc.js';

const LEASE_MS = 3_000;

/**
 * Acceptance of the clustered bus: 2 real Hazelcast 5.6 members, 3 backend node processes that
 * join them as clients, messages between the nodes over their own TCP links.
 */
describe('clustered event bus on real Hazelcast (2 members, 3 nodes)', function () {
  this.timeout(120_000);
  let fx: ClusterFixture;
  let nodes: BusNode[] = [];

  /** Waits until every given node routes `address` to exactly the expected node ids. */
  async function converge(address: string, expected: BusNode[], on: BusNode[] = nodes): Promise<void> {
    const want = expected.map((n) => n.nodeId).sort();
    for (const n of on) {
      await waitFor(
        `${n.name} to see ${address} on [${want.join(', ')}]`,
        async () => {
          const v = await n.view(address);
          return JSON.stringify([...(v.subscribers[address] ?? [])].sort()) === JSON.stringify(want);
        },
        15_000,
      );
    }
  }

  before(async function () {
    this.timeout(240_000);
    fx = await ClusterFixture.start({ nodes: 3, env: { CLUSTER_LEASE_MS: String(LEASE_MS) } });
    nodes = [...fx.nodes];
  });

  after(async function () {
    this.timeout(60_000);
    fx.nodes = nodes;
    await fx?.stop();
  });

  it('answers a request on another node', async () => {
    const [n0, n1] = nodes as [BusNode, BusNode];
    await n1.consumer('it.echo', 'echo');
    await converge('it.echo', [n1]);
    const reply = await n0.request('it.echo', { hello: 'world' });
    expect(reply.ok).to.equal(true);
    expect(reply.body).to.deep.include({ from: n1.nodeId, body: { hello: 'world' } });
  });

  it('publishes to every consumer on every node, once each', async () => {
    for (const n of nodes) await n.consumer('it.news', 'record');
    await converge('it.news', nodes);
    for (let i = 0; i < 5; i++) await nodes[0]!.publish('it.news', i);
    for (const n of nodes) {
      await waitFor(
        `${n.name} to get 5 publishes`,
        async () => (await n.received('it.news')).length >= 5,
        10_000,
      );
    }
    await new Promise((r) => setTimeout(r, 200)); // anything extra would have arrived by now
    for (const n of nodes) expect(await n.received('it.news')).to.deep.equal([0, 1, 2, 3, 4]);
  });

  it('keeps order from one sender to a consumer on another node', async () => {
    const [n0, , n2] = nodes as [BusNode, BusNode, BusNode];
    await n2.consumer('it.order', 'record');
    await converge('it.order', [n2]);
    for (let i = 0; i < 200; i++) await n0.send('it.order', i);
    await waitFor('200 ordered messages', async () => (await n2.received('it.order')).length === 200, 10_000);
    expect(await n2.received('it.order')).to.deep.equal([...Array(200).keys()]);
  });

  it('spreads sends round-robin across the nodes', async () => {
    for (const n of nodes) await n.consumer('it.rr', 'echo');
    await converge('it.rr', nodes);
    const counts = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const reply = await nodes[0]!.request('it.rr', i);
      expect(reply.ok, JSON.stringify(reply)).to.equal(true);
      const from = (reply.body as { from: string }).from;
      counts.set(from, (counts.get(from) ?? 0) + 1);
    }
    expect([...counts.values()]).to.deep.equal([10, 10, 10]);
  });

  it("sends preferLocal requests to this node's consumer, and round-robin once it has none", async () => {
    for (const n of nodes) await n.consumer('it.near', 'echo');
    await converge('it.near', nodes);
    const from = async (): Promise<string> => {
      const reply = await nodes[1]!.requestPreferLocal('it.near', 1);
      expect(reply.ok, JSON.stringify(reply)).to.equal(true);
      return (reply.body as { from: string }).from;
    };
    for (let i = 0; i < 10; i++) expect(await from()).to.equal(nodes[1]!.nodeId);
    const { id } = await nodes[1]!.consumer('it.near2', 'echo');
    await nodes[0]!.consumer('it.near2', 'echo');
    await converge('it.near2', [nodes[0]!, nodes[1]!]);
    await nodes[1]!.unregister(id);
    await converge('it.near2', [nodes[0]!]);
    const reply = await nodes[1]!.requestPreferLocal('it.near2', 1);
    expect(reply.ok, JSON.stringify(reply)).to.equal(true);
    expect((reply.body as { from: string }).from).to.equal(nodes[0]!.nodeId);
  });

  it('fails with NO_HANDLERS at once for an address nobody consumes', async () => {
    const reply = await nodes[1]!.request('it.nobody', 1, 60_000);
    expect(reply).to.deep.include({ ok: false, failureType: 'NO_HANDLERS' });
  });

  it("carries a recipient's failure code back across nodes", async () => {
    await nodes[2]!.consumer('it.fail', 'fail');
    await converge('it.fail', [nodes[2]!]);
    const reply = await nodes[0]!.request('it.fail', 1);
    expect(reply).to.deep.include({ ok: false, failureType: 'RECIPIENT_FAILURE', failureCode: 418 });
  });

  it('drops a consumer everywhere when it unregisters', async () => {
    const { id } = await nodes[1]!.consumer('it.temp', 'echo');
    await converge('it.temp', [nodes[1]!]);
    await nodes[1]!.unregister(id);
    await converge('it.temp', []);
    const reply = await nodes[0]!.request('it.temp', 1);
    expect(reply).to.deep.include({ ok: false, failureType: 'NO_HANDLERS' });
  });

  it('keeps local consumers off other nodes', async () => {
    await nodes[2]!.consumer('it.local', 'echo', true);
    expect(await nodes[0]!.request('it.local', 1)).to.deep.include({ failureType: 'NO_HANDLERS' });
    expect(await nodes[2]!.request('it.local', 1)).to.deep.include({ ok: true });
  });

  it('answers garbage on a node-to-node port with an error and keeps working', async () => {
    const view = await nodes[0]!.view();
    const target = view.nodes.find((n) => n.nodeId === nodes[1]!.nodeId)!;
    const answer = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: target.host, port: target.port }, () => s.write('hello there, bus\n'));
      let text = '';
      s.on('data', (c) => (text += c.toString()));
      s.on('close', () => resolve(text));
      s.on('error', reject);
      setTimeout(() => s.destroy(), 10_000).unref();
    });
    expect(answer).to.match(/switchboard bus protocol error/);
    const reply = await nodes[0]!.request('it.echo', 'after garbage');
    expect(reply).to.deep.include({ ok: true });
  });

  it('removes a SIGKILLed node within its lease and never waits on it', async () => {
    const [n0, n1, n2] = nodes as [BusNode, BusNode, BusNode];
    await converge('it.rr', nodes);
    n2.proc.kill('SIGKILL');
    await n2.proc.exited;
    const killedAt = Date.now();
    // Straight after the kill, before any lease runs out: every request is served by a live node.
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => n0.request('it.rr', i, 60_000)));
    const failed = replies.filter((r) => !r.ok);
    expect(failed, JSON.stringify(failed)).to.deep.equal([]);
    expect(new Set(replies.map((r) => (r.body as { from: string }).from))).to.not.include(n2.nodeId);
    for (const n of [n0, n1]) {
      await waitFor(
        `${n.name} to drop the killed node`,
        async () => !(await n.view()).nodes.some((x) => x.nodeId === n2.nodeId),
        LEASE_MS * 2 + 5_000,
      );
    }
    const goneAfter = Date.now() - killedAt;
    console.log(`      killed node left the registry after ${goneAfter} ms (lease ${LEASE_MS} ms)`);
    // Its subscriptions are collected from the registry, not only hidden.
    await converge('it.rr', [n0, n1], [n0, n1]);
    nodes = [n0, n1];
  });

  it('keeps working when one Hazelcast member is killed', async () => {
    const [n0, n1] = nodes as [BusNode, BusNode];
    await fx.hz.stopMember(0, 'SIGKILL');
    // Longer than a lease: the nodes keep refreshing theirs through the surviving member.
    await new Promise((r) => setTimeout(r, LEASE_MS + 1_000));
    for (const n of [n0, n1]) {
      const v = await n.view();
      expect(v.nodes.map((x) => x.nodeId).sort()).to.deep.equal([n0.nodeId, n1.nodeId].sort());
    }
    expect(await n0.request('it.echo', 'after member loss')).to.deep.include({ ok: true });
    // Registrations made after the loss reach the other node through the surviving member.
    await n0.consumer('it.after-loss', 'echo');
    await converge('it.after-loss', [n0], [n0, n1]);
    const reply = await n1.request('it.after-loss', 'x');
    expect(reply).to.deep.include({ ok: true });
    expect((reply.body as { from: string }).from).to.equal(n0.nodeId);
  });

  it('a node that joins while a peer subscribes routes to every one of those subscriptions', async () => {
    const [n0] = nodes as [BusNode];
    // The joining node reads a snapshot of the registry while events stream in; a subscription made
    // during that read must survive it. Keep subscribing for the whole start-up to hit that window.
    const addresses: string[] = [];
    let starting = true;
    const subscribing = (async () => {
      while (starting && addresses.length < 3_000) {
        const address = `it.race.${addresses.length}`;
        await n0.consumer(address, 'echo');
        addresses.push(address);
      }
    })();
    const n4 = await fx.startNode('node-4').finally(() => {
      starting = false;
    });
    nodes.push(n4);
    await subscribing;
    expect(addresses.length).to.be.greaterThan(10);
    let missing: string[] = [];
    await waitFor(
      `node-4 to route all ${addresses.length} addresses subscribed during its start`,
      async () => {
        missing = [];
        for (let i = 0; i < addresses.length; i += 200) {
          const chunk = addresses.slice(i, i + 200);
          const v = await n4.view(...chunk);
          missing.push(...chunk.filter((a) => !(v.subscribers[a] ?? []).includes(n0.nodeId)));
        }
        return missing.length === 0;
      },
      15_000,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}: missing ${missing.length}, e.g. ${missing.slice(0, 5).join(', ')}`);
    });
    n4.proc.kill('SIGTERM');
    expect(await n4.proc.exited).to.deep.equal({ code: 0, signal: null });
    nodes.pop();
  });

  it('sees a new node join, and a SIGTERMed node leave at once and exit 0', async () => {
    const [n0, n1] = nodes as [BusNode, BusNode];
    const n3 = await fx.startNode('node-3');
    nodes.push(n3); // so that the fixture stops it whatever happens
    for (const n of [n0, n1]) {
      await waitFor(
        `${n.name} to see node-3`,
        async () => (await n.view()).nodes.some((x) => x.nodeId === n3.nodeId),
        15_000,
      );
    }
    await n3.consumer('it.late', 'echo');
    await converge('it.late', [n3], [n0, n1, n3]);
    expect(await n0.request('it.late', 1)).to.deep.include({ ok: true });
    const stoppedAt = Date.now();
    n3.proc.kill('SIGTERM');
    expect(await n3.proc.exited).to.deep.equal({ code: 0, signal: null });
    for (const n of [n0, n1]) {
      await waitFor(
        `${n.name} to drop node-3`,
        async () => !(await n.view()).nodes.some((x) => x.nodeId === n3.nodeId),
        LEASE_MS * 2,
      );
    }
    console.log(
      `      SIGTERMed node left the registry after ${Date.now() - stoppedAt} ms (lease ${LEASE_MS} ms)`,
    );
    await converge('it.late', [], [n0, n1]);
    expect(await n0.request('it.late', 1)).to.deep.include({ ok: false, failureType: 'NO_HANDLERS' });
  });
});
