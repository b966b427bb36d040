import { expect } from 'chai';
import { appendAddress, ownerOf } from '../../backend/src/chat/room-owner.js';
import type { BusNode, ReplyResult } from '../helpers/bus-nodes.js';
import { ClusterFixture } from '../helpers/cluster-fixture.js';
import { metric } from '../helpers/metrics-page.js';
import { waitFor } from '../infra/proc.js';

function ok<T>(r: ReplyResult): T {
  expect(r.ok, JSON.stringify(r)).to.equal(true);
  return r.body as T;
}

/** A store metric of the node now (its /metrics on the admin port). */
async function storeMetric(node: BusNode, name: string): Promise<number> {
  const page = await (await fetch(`${node.adminUrl}/metrics`)).text();
  if (!page.includes(`${name} `)) throw new Error(`${node.name}: no ${name} in /metrics`);
  return metric(page, name);
}

/** How many rooms' recent tails the node holds now. */
function tailRooms(node: BusNode): Promise<number> {
  return storeMetric(node, 'switchboard_store_tail_rooms');
}

/**
 * Room ownership when a node joins (2 Hazelcast members, FerretDB, real node processes): rooms
 * move only to the new node, so only they lose their recent tails; the other rooms' owners keep
 * theirs and go on answering from memory, instead of every room being read from the database
 * again after every membership change; the rooms that move reach the new node with their tails.
 * When a node drains, its rooms' next owners get the tails it held (chat/tail-handover.ts) and
 * read none of them from the database.
 */
describe('room ownership as a node joins and as one drains (2 → 3 → 2 clustered nodes with FerretDB)', function () {
  this.timeout(180_000);
  let fx: ClusterFixture;

  before(async function () {
    this.timeout(300_000);
    fx = await ClusterFixture.start({ nodes: 2 });
    await fx.waitForSubscribers('chat.send', fx.nodes);
  });

  after(async function () {
    this.timeout(60_000);
    await fx?.stop();
  });

  it('a joining node takes over only its share of the rooms, warm; the other owners keep their tails', async () => {
    const [n0, n1] = fx.nodes as [BusNode, BusNode];
    const rooms = Array.from({ length: 24 }, (_, i) => `tails-${i}`);
    for (const room of rooms)
      ok(await n0.request('chat.send', { room, user: 'ana', clientMsgId: `${room}-1`, text: 'one' }));
    const two = [n0.nodeId, n1.nodeId];
    const ownedBy = (node: BusNode, ids: string[]) => rooms.filter((r) => ownerOf(r, ids) === node.nodeId);
    await waitFor(
      'each owner to hold its rooms’ tails',
      async () =>
        (await tailRooms(n0)) === ownedBy(n0, two).length &&
        (await tailRooms(n1)) === ownedBy(n1, two).length,
      10_000,
    );

    const n2 = await fx.startNode('node-2');
    fx.nodes.push(n2);
    await fx.waitForNodes(fx.nodes);
    await fx.waitForSubscribers(appendAddress(n2.nodeId), [n2]);
    const three = [...two, n2.nodeId];
    const kept = [ownedBy(n0, three).length, ownedBy(n1, three).length];
    // Rendezvous hashing: a room either stays with its owner or moves to the new node.
    expect(kept[0]! + kept[1]! + ownedBy(n2, three).length).to.equal(rooms.length);
    expect(kept[0]! + kept[1]!, 'rooms that stay with their owner').to.be.greaterThan(0);
    // Without a request meanwhile: the owners notice the change by themselves and drop exactly
    // the tails of the rooms that moved.
    let seen: number[] = [];
    await waitFor(
      'the old owners to keep the tails of the rooms they still own, and only those',
      async () => {
        seen = [await tailRooms(n0), await tailRooms(n1)];
        return seen[0] === kept[0] && seen[1] === kept[1];
      },
      10_000,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}: tails ${seen.join('/')}, rooms still owned ${kept.join('/')}`);
    });

    // Every room goes on densely at its owner, moved or not, whichever node the send comes in by.
    for (const [i, room] of rooms.entries()) {
      const via = fx.nodes[i % 3]!;
      const ack = ok<{ seq: number }>(
        await via.request('chat.send', { room, user: 'ana', clientMsgId: `${room}-2`, text: 'two' }),
      );
      expect(ack.seq, room).to.equal(2);
    }
    // The rooms that moved came to the new node warm: their old owners handed their tails over
    // when they saw it (tail-handover.ts, handOverMoved), so it read none from the database.
    const moved = ownedBy(n2, three).length;
    expect(moved, 'rooms that moved to the new node').to.be.greaterThan(0);
    expect({
      handedOver: await storeMetric(n2, 'switchboard_store_tail_handovers_total'),
      loads: await storeMetric(n2, 'switchboard_store_tail_loads_total'),
    }).to.deep.equal({ handedOver: moved, loads: 0 });
  });

  it('a draining owner hands its rooms’ tails to their next owners, who serve them without reading the database', async () => {
    const [n0, n1, n2] = fx.nodes as [BusNode, BusNode, BusNode];
    const rooms = Array.from({ length: 24 }, (_, i) => `tails-${i}`);
    const three = [n0.nodeId, n1.nodeId, n2.nodeId];
    const leaving = rooms.filter((r) => ownerOf(r, three) === n2.nodeId);
    expect(leaving.length, 'rooms the draining node owns').to.be.greaterThan(0);
    await waitFor(
      'the draining node to hold its rooms’ tails',
      async () => (await tailRooms(n2)) === leaving.length,
      10_000,
    );
    const survivors = [n0, n1];
    const before = await Promise.all(
      survivors.map(async (n) => ({
        loads: await storeMetric(n, 'switchboard_store_tail_loads_total'),
        handedOver: await storeMetric(n, 'switchboard_store_tail_handovers_total'),
      })),
    );
    n2.proc.kill('SIGTERM'); // the drain: PreStop's work, then the handover, then the node leaves
    expect((await n2.proc.exited).code, 'exit code of the drained node').to.equal(0);
    fx.nodes.splice(2, 1);
    await fx.waitForNodes(fx.nodes);
    // Every room goes on densely, the moved ones at their new owners.
    for (const [i, room] of rooms.entries()) {
      const ack = ok<{ seq: number }>(
        await survivors[i % 2]!.request('chat.send', {
          room,
          user: 'ana',
          clientMsgId: `${room}-3`,
          text: 'three',
        }),
      );
      expect(ack.seq, room).to.equal(3);
    }
    const after = await Promise.all(
      survivors.map(async (n) => ({
        loads: await storeMetric(n, 'switchboard_store_tail_loads_total'),
        handedOver: await storeMetric(n, 'switchboard_store_tail_handovers_total'),
      })),
    );
    const handedOver = after.reduce((n, a, i) => n + a.handedOver - before[i]!.handedOver, 0);
    const loads = after.reduce((n, a, i) => n + a.loads - before[i]!.loads, 0);
    expect({ handedOver, loads }, 'tails taken over / read from the database').to.deep.equal({
      handedOver: leaving.length,
      loads: 0,
    });
  });
});
