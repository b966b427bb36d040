import { expect } from 'chai';
import { appendAddress, ownerOf, readAddress } from '../../backend/src/chat/room-owner.js';

describe('chat room owners (rendezvous hashing)', () => {
  const nodes = ['node0-1f43bf45', 'node1-f62c268f', 'node2-0753ed28'];
  const rooms = Array.from({ length: 3_000 }, (_, i) => `room-${i}`);

  it('gives every room one owner, the same whatever the order of the node list', () => {
    for (const room of rooms.slice(0, 200)) {
      expect(ownerOf(room, nodes)).to.equal(ownerOf(room, [...nodes].reverse()));
    }
    expect(ownerOf('general', [])).to.equal(undefined);
    expect(ownerOf('general', ['only'])).to.equal('only');
  });

  it('spreads rooms evenly over the nodes', () => {
    const counts = new Map<string, number>();
    for (const room of rooms) counts.set(ownerOf(room, nodes)!, (counts.get(ownerOf(room, nodes)!) ?? 0) + 1);
    for (const n of nodes) expect(counts.get(n) ?? 0, n).to.be.within(800, 1_200);
  });

  it('moves only the rooms of a node that leaves, and a joining node takes rooms from each', () => {
    const survivors = nodes.slice(0, 2);
    for (const room of rooms) {
      const before = ownerOf(room, nodes)!;
      if (before !== nodes[2]) expect(ownerOf(room, survivors), room).to.equal(before);
    }
    const grown = [...nodes, 'node3-aaaaaaaa'];
    const moved = rooms.filter((r) => ownerOf(r, grown) !== ownerOf(r, nodes));
    expect(moved.every((r) => ownerOf(r, grown) === 'node3-aaaaaaaa')).to.equal(true);
    expect(moved.length).to.be.within(500, 1_000);
  });

  it('names per-node append and read addresses, distinct from each other', () => {
    expect(appendAddress('node0-1f43bf45')).to.equal('chat.append.node0-1f43bf45');
    expect(readAddress('node0-1f43bf45')).to.equal('chat.read.node0-1f43bf45');
  });
});
