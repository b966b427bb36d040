import { expect } from 'chai';
import { NameClaims } from '../../backend/src/chat/name-claims.js';
import { MemoryRegistry } from '../helpers/memory-cluster.js';

async function twoNodes() {
  const registry = new MemoryRegistry();
  const [a, b] = [registry.manager(), registry.manager()];
  await a.join({ nodeId: 'a', host: '127.0.0.1', port: 1 });
  await b.join({ nodeId: 'b', host: '127.0.0.1', port: 2 });
  return { registry, onA: new NameClaims(a.map('names'), a), onB: new NameClaims(b.map('names'), b) };
}

describe('name claims (open mode: one holder per name and room)', () => {
  it('gives a name to exactly one of many concurrent claims from two nodes', async () => {
    const { onA, onB } = await twoNodes();
    const won = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        (i % 2 ? onA : onB).claim('general', 'ana', { s: `s${i}`, n: i % 2 ? 'a' : 'b', k: `k${i}` }),
      ),
    );
    expect(won.filter(Boolean)).to.have.length(1);
  });

  it('lets the same session, the resume token or anyone after the holder node died take it over', async () => {
    const { registry, onA, onB } = await twoNodes();
    expect(await onA.claim('r', 'ana', { s: 's1', n: 'a', k: 'k1' })).to.equal(true);
    expect(await onB.claim('r', 'ana', { s: 's2', n: 'b', k: 'k2' })).to.equal(false);
    expect(await onA.claim('r', 'ana', { s: 's1', n: 'a', k: 'k1' })).to.equal(true);
    expect(await onB.claim('r', 'ana', { s: 's3', n: 'b', k: 'k1' })).to.equal(true);
    expect(await onA.claim('r', 'ana', { s: 's1', n: 'a', k: 'k1' })).to.equal(true); // s1's token k1
    expect(await onA.claim('r', 'bo', { s: 's4', n: 'a', k: 'k4' })).to.equal(true);
    registry.expire('a');
    expect(await onB.claim('r', 'bo', { s: 's5', n: 'b', k: 'k5' })).to.equal(true);
  });

  it('is released by its own session only, and collected when its node leaves', async () => {
    const { onA, onB } = await twoNodes();
    await onA.claim('r', 'ana', { s: 's1', n: 'a', k: 'k1' });
    await onB.release('r', 'ana', 's2');
    expect(await onB.claim('r', 'ana', { s: 's2', n: 'b', k: 'k2' })).to.equal(false);
    await onA.release('r', 'ana', 's1');
    expect(await onB.claim('r', 'ana', { s: 's2', n: 'b', k: 'k2' })).to.equal(true);
    await onA.collect('b');
    expect(await onA.claim('r', 'ana', { s: 's1', n: 'a', k: 'k1' })).to.equal(true);
  });
});
