import { expect } from 'chai';
import { Presence } from '../../backend/src/chat/presence.js';
import { StandaloneClusterManager } from '../../backend/src/cluster/standalone.js';

async function presence() {
  const cluster = new StandaloneClusterManager();
  await cluster.join({ nodeId: 'n1', host: '127.0.0.1', port: 1 });
  const rooms = cluster.multiMap('chat.presence');
  const byUser = cluster.multiMap('chat.presence.user');
  return { p: new Presence(rooms, byUser, cluster), rooms, byUser };
}

describe('presence (room list and room + user index kept together)', () => {
  it('finds a name held by another session from the user index, and not by the same session', async () => {
    const { p } = await presence();
    await p.join('general', 'ana', 's1', 'n1', 'hash-a');
    await p.join('general', 'bo', 's2', 'n1');
    const held = await p.heldElsewhere('general', 'ana', 's9');
    expect(held.map((h) => h.entry)).to.deep.equal([{ u: 'ana', s: 's1', n: 'n1', k: 'hash-a' }]);
    expect(await p.heldElsewhere('general', 'ana', 's1')).to.deep.equal([]);
    expect(await p.heldElsewhere('other', 'ana', 's9')).to.deep.equal([]);
    expect(await p.users('general')).to.deep.equal(['ana', 'bo']);
  });

  it('leave and removeRaw remove the entry from both maps', async () => {
    const { p, rooms, byUser } = await presence();
    await p.join('general', 'ana', 's1', 'n1');
    await p.join('general', 'ana', 's2', 'n1');
    expect(await p.leave('general', 'ana', 's1')).to.equal(true);
    expect((await rooms.get('general')).map((r) => JSON.parse(r).s)).to.deep.equal(['s2']);
    expect((await byUser.get('general\u0000ana')).map((r) => JSON.parse(r).s)).to.deep.equal(['s2']);
    const [held] = await p.heldElsewhere('general', 'ana', 'sX');
    await p.removeRaw('general', held!.raw);
    expect(await rooms.get('general')).to.deep.equal([]);
    expect(await byUser.get('general\u0000ana')).to.deep.equal([]);
    expect(await p.leave('general', 'ana')).to.equal(false);
  });

  it("collecting a departed node's entries empties both maps for it", async () => {
    const { p, rooms, byUser } = await presence();
    await p.join('a', 'ana', 's1', 'gone');
    await p.join('b', 'ana', 's1', 'gone');
    await p.join('a', 'bo', 's2', 'n1');
    expect((await p.collect('gone')).sort()).to.deep.equal(['a', 'b']);
    expect((await rooms.entries()).map(([room]) => room)).to.deep.equal(['a']);
    expect(await byUser.get('a\u0000ana')).to.deep.equal([]);
    expect(await byUser.get('b\u0000ana')).to.deep.equal([]);
    expect(await byUser.get('a\u0000bo')).to.have.length(1);
  });
});
