import { expect } from 'chai';
import { WebSocket } from 'ws';
import { ChatClient, type ChatMessage } from '../../messages-lib/src/index.js';
import { ClusterFixture } from '../helpers/cluster-fixture.js';
import { waitFor } from '../infra/proc.js';

interface Acked {
  seq: number;
  id: string;
}

function newClient(user: string, url: string | string[]): ChatClient {
  return new ChatClient({
    url,
    user,
    WebSocket: WebSocket as never,
    reconnect: { baseMs: 100, maxMs: 1_000 },
    heartbeatMs: 1_000,
  });
}

function seqsOf(messages: readonly ChatMessage[]): number[] {
  return messages.map((m) => m.seq);
}

/**
 * messages-lib against the real stack: 2 backend nodes on 2 Hazelcast members with FerretDB.
 * A client whose node is SIGKILLed moves to the other node and ends with exactly what was acked.
 */
describe('messages-lib on 2 clustered nodes', function () {
  this.timeout(180_000);
  let fx: ClusterFixture;
  const clients: ChatClient[] = [];

  before(async function () {
    this.timeout(300_000);
    fx = await ClusterFixture.start({ nodes: 2, env: { CLUSTER_LEASE_MS: '3000' } });
    await fx.waitForSubscribers('chat.send', fx.nodes);
  });

  after(async function () {
    this.timeout(60_000);
    await Promise.allSettled(clients.map((c) => c.close()));
    await fx?.stop();
  });

  it('chats across nodes: each message once, in seq order, acked after storage', async () => {
    const ana = newClient('ana', fx.nodes[0]!.httpUrl);
    const bob = newClient('bob', fx.nodes[1]!.httpUrl);
    clients.push(ana, bob);
    await Promise.all([ana.connect(), bob.connect()]);
    const [ra, rb] = await Promise.all([ana.join('across'), bob.join('across')]);
    const acks: Acked[] = [];
    for (let i = 0; i < 20; i++) acks.push(await (i % 2 ? ra : rb).send(`m${i}`));
    const all = acks.map((a) => a.seq).sort((x, y) => x - y);
    for (const room of [ra, rb]) {
      await waitFor('both clients to hold 20 messages', () => room.messages.length >= 20, 15_000);
      expect(seqsOf(room.messages)).to.deep.equal(all);
    }
    expect(ra.messages.map((m) => m.text)).to.deep.equal(Array.from({ length: 20 }, (_, i) => `m${i}`));
  });

  it('survives a SIGKILL of its node: reconnects to the other, replays, delivers its outbox once', async () => {
    const [n0, n1] = fx.nodes as [(typeof fx.nodes)[0], (typeof fx.nodes)[0]];
    const room = 'killed';
    // The victim starts on node 0 and knows node 1 as the next one to try.
    const victim = newClient('victim', [n0.httpUrl, n1.httpUrl]);
    const sender = newClient('sender', n1.httpUrl);
    const watcher = newClient('watcher', n1.httpUrl);
    clients.push(victim, sender, watcher);
    await Promise.all([victim.connect(), sender.connect(), watcher.connect()]);
    expect(victim.node).to.equal(n0.nodeId);
    const [rv, rs, rw] = await Promise.all([victim.join(room), sender.join(room), watcher.join(room)]);
    const states: string[] = [];
    victim.on('state', (s) => states.push(s));

    const acked: Acked[] = [];
    let sending = true;
    const senderLoop = (async () => {
      for (let i = 0; sending; i++) {
        acked.push(await rs.send(`sender ${i}`));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    for (let i = 0; i < 5; i++) acked.push(await rv.send(`victim before ${i}`));
    await waitFor('traffic before the kill', () => acked.length >= 30, 20_000);

    n0.proc.kill('SIGKILL');
    await n0.proc.exited;
    await waitFor('the victim to notice', () => states.includes('reconnecting'), 10_000);
    // Typed while disconnected: queued in the outbox, delivered once after the reconnect.
    const offline = Array.from({ length: 5 }, (_, i) => rv.send(`victim offline ${i}`));
    await waitFor('the victim to be back', () => victim.state === 'open', 30_000);
    expect(victim.node).to.equal(n1.nodeId);
    acked.push(...(await Promise.all(offline)));
    await new Promise((r) => setTimeout(r, 1_000)); // more traffic after the reconnect
    sending = false;
    await senderLoop;

    const expected = acked.map((a) => a.seq).sort((x, y) => x - y);
    expect(new Set(expected).size, 'every ack has its own seq').to.equal(expected.length);
    for (const [name, r] of [
      ['victim', rv],
      ['watcher', rw],
      ['sender', rs],
    ] as const) {
      await waitFor(`${name} to catch up`, () => (r.lastSeq ?? 0) >= expected.at(-1)!, 20_000);
      const seqs = seqsOf(r.messages);
      expect(new Set(seqs).size, `${name}: no message twice`).to.equal(seqs.length);
      expect(seqs, `${name}: seq order`).to.deep.equal([...seqs].sort((x, y) => x - y));
      // Nothing acked is missing; seqs are dense, so the room holds exactly 1..max.
      expect(seqs, `${name}: exactly the acked messages`).to.deep.equal(expected);
    }
    const offlineTexts = rw.messages.filter((m) => m.text?.startsWith('victim offline')).map((m) => m.text);
    expect(offlineTexts).to.deep.equal(Array.from({ length: 5 }, (_, i) => `victim offline ${i}`));
    expect(rv.pending).to.deep.equal([]);
  });
});
