import { expect } from 'chai';
import { WebSocket } from 'ws';
import { ChatClient, type ChatMessage } from '../../messages-lib/src/index.js';
import { GrpcChatClient, type GrpcChatClientOptions } from '../../messages-lib/src/grpc/index.js';
import type { BusNode } from '../helpers/bus-nodes.js';
import { ClusterFixture } from '../helpers/cluster-fixture.js';
import { waitFor } from '../infra/proc.js';

interface Acked {
  seq: number;
  id: string;
}

const addr = (n: BusNode) => `127.0.0.1:${n.grpcPort}`;
const seqsOf = (messages: readonly ChatMessage[]) => messages.map((m) => m.seq);
let unique = 0;
const roomName = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${unique++}`;

/**
 * The gRPC transport of messages-lib against the real stack: 2 backend nodes on 2 Hazelcast
 * members with FerretDB, next to the WebSocket client in the same rooms.
 */
describe('messages-lib over gRPC on 2 clustered nodes', function () {
  this.timeout(180_000);
  let fx: ClusterFixture;
  let n0: BusNode;
  let n1: BusNode;
  const closers: { close(): Promise<void> }[] = [];

  function grpcClient(user: string, target: string | string[], extra: Partial<GrpcChatClientOptions> = {}) {
    const c = new GrpcChatClient({ target, user, reconnect: { baseMs: 100, maxMs: 1_000 }, ...extra });
    closers.push(c);
    return c;
  }

  function wsClient(user: string, url: string): ChatClient {
    const c = new ChatClient({
      url,
      user,
      WebSocket: WebSocket as never,
      reconnect: { baseMs: 100, maxMs: 1_000 },
      heartbeatMs: 1_000,
    });
    closers.push(c);
    return c;
  }

  before(async function () {
    this.timeout(300_000);
    fx = await ClusterFixture.start({ nodes: 2, env: { CLUSTER_LEASE_MS: '3000' } });
    [n0, n1] = fx.nodes as [BusNode, BusNode];
    await fx.waitForSubscribers('chat.send', fx.nodes);
  });

  after(async function () {
    this.timeout(60_000);
    await Promise.allSettled(closers.map((c) => c.close()));
    await fx?.stop();
  });

  it('a gRPC and a WebSocket client in one room see the same messages, files included', async () => {
    const room = roomName('mixed');
    const g = grpcClient('gina', [addr(n0), addr(n1)]);
    const w = wsClient('walt', n1.httpUrl);
    await Promise.all([g.connect(), w.connect()]);
    const [rg, rw] = await Promise.all([g.join(room), w.join(room)]);
    const acks: Acked[] = [];
    for (let i = 0; i < 20; i++) acks.push(await (i % 2 ? rw : rg).send(`m${i}`));
    acks.push(
      await rg.sendFile(Buffer.from('file over gRPC'), 'notes.txt', 'text/plain', { text: 'see file' }),
    );
    const all = acks.map((a) => a.seq).sort((x, y) => x - y);
    for (const r of [rg, rw]) {
      await waitFor('both clients to hold 21 messages', () => r.messages.length >= 21, 15_000);
      expect(seqsOf(r.messages)).to.deep.equal(all);
    }
    expect(rg.messages.map((m) => m.text)).to.deep.equal(rw.messages.map((m) => m.text));
    expect(rg.messages.slice(0, 20).map((m) => m.text)).to.deep.equal(
      Array.from({ length: 20 }, (_, i) => `m${i}`),
    );
    const file = rw.messages.at(-1)!.file!;
    expect(file).to.include({ name: 'notes.txt', contentType: 'text/plain', size: 14 });
    const down = await g.download(file.id);
    expect(down.data.toString()).to.equal('file over gRPC');
    await waitFor('presence of both', () => rg.users.length === 2, 10_000);
    expect([...rg.users].sort()).to.deep.equal(['gina', 'walt']);
  });

  it('round_robin spreads calls over both nodes (sb-node); pick_first keeps them on one', async () => {
    const room = roomName('rr');
    const served = async (c: GrpcChatClient): Promise<Set<string>> => {
      const nodes = new Set<string>();
      c.on('served', (s) => {
        if (s.method === 'history') nodes.add(s.node);
      });
      await c.connect();
      const r = await c.join(room);
      // round robin uses a subchannel once it is ready: wait for both before counting
      await waitFor(
        'a history call on each node',
        async () => {
          await r.fetchHistory({ limit: 1 });
          return nodes.size === 2 || (c === pf && nodes.size === 1);
        },
        15_000,
      );
      nodes.clear();
      for (let i = 0; i < 10; i++) await r.fetchHistory({ limit: 1 });
      return nodes;
    };
    const rr = grpcClient('rr', `ipv4:127.0.0.1:${n0.grpcPort},127.0.0.1:${n1.grpcPort}`);
    const pf = grpcClient('pf', [addr(n0), addr(n1)], { loadBalancing: 'pick_first' });
    expect([...(await served(rr))].sort()).to.deep.equal([n0.nodeId, n1.nodeId].sort());
    expect(await served(pf)).to.have.property('size', 1);
  });

  it('survives a SIGKILL of its node: rejoins on the other with since, ends with exactly the acked messages, its outbox once', async () => {
    const room = roomName('killed');
    const victim = grpcClient('victim', [addr(n0), addr(n1)]);
    await victim.connect();
    const rv = await victim.join(room);
    const dead = victim.nodeOf(room) === n0.nodeId ? n0 : n1;
    const alive = dead === n0 ? n1 : n0;
    expect(victim.nodeOf(room)).to.equal(dead.nodeId);
    const sender = grpcClient('sender', addr(alive));
    const watcher = wsClient('watcher', alive.httpUrl);
    await Promise.all([sender.connect(), watcher.connect()]);
    const [rs, rw] = await Promise.all([sender.join(room), watcher.join(room)]);
    const states: string[] = [];
    victim.on('state', (s) => states.push(s));
    const rejoins: (number | undefined)[] = [];
    rv.on('joined', (j) => j.rejoin && rejoins.push(rv.lastSeq));

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

    dead.proc.kill('SIGKILL');
    await dead.proc.exited;
    await waitFor('the victim to notice', () => states.includes('reconnecting'), 10_000);
    // Typed during the outage: queued in the outbox, delivered once after the rejoin.
    const offline = Array.from({ length: 5 }, (_, i) => rv.send(`victim offline ${i}`));
    await waitFor('the victim to be back', () => victim.state === 'open', 30_000);
    expect(victim.nodeOf(room)).to.equal(alive.nodeId);
    expect(rejoins.length, 'rejoined with since').to.be.greaterThan(0);
    acked.push(...(await Promise.all(offline)));
    await new Promise((r) => setTimeout(r, 1_000)); // more traffic after the rejoin
    sending = false;
    await senderLoop;

    const expected = acked.map((a) => a.seq).sort((x, y) => x - y);
    expect(new Set(expected).size, 'every ack has its own seq').to.equal(expected.length);
    for (const [who, r] of [
      ['victim', rv],
      ['watcher', rw],
      ['sender', rs],
    ] as const) {
      await waitFor(`${who} to catch up`, () => (r.lastSeq ?? 0) >= expected.at(-1)!, 20_000);
      const seqs = seqsOf(r.messages);
      expect(new Set(seqs).size, `${who}: no message twice`).to.equal(seqs.length);
      expect(seqs, `${who}: seq order`).to.deep.equal([...seqs].sort((x, y) => x - y));
      expect(seqs, `${who}: exactly the acked messages`).to.deep.equal(expected);
    }
    const offlineTexts = rw.messages.filter((m) => m.text?.startsWith('victim offline')).map((m) => m.text);
    expect(offlineTexts).to.deep.equal(Array.from({ length: 5 }, (_, i) => `victim offline ${i}`));
    expect(rv.pending).to.deep.equal([]);
  });
});
