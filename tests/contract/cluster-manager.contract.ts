/**
 * The ClusterManager contract: one mocha suite every implementation passes.
 *
 *   describeClusterManagerContract('memory', async () => ({ manager, cleanup }), { multiMember: true, ... });
 *
 * The factory gives a fixture on a fresh, empty cluster (registry and shared data): `manager()`
 * makes a manager of that cluster, not joined yet (a cluster of one makes one); `cleanup()` leaves
 * every manager it made and frees the cluster. `crash(m)`, when offered, makes a joined manager
 * vanish without `leave()`, as a killed process or a lost lease would.
 *
 * It asserts what the event bus and ChatService rely on: a node's own subscriptions are visible to
 * routing as soon as the call resolves (and stay as last set); `subscribers` and `nodes` are
 * snapshots; shared maps keep sets per key and decide put-if-absent / compare-and-set atomically,
 * across members; a member that joins sees what is there when `join()` resolves; a member that
 * goes (leaves or crashes) is reported once by `nodeLeft`, and is already out of `nodes()`,
 * `node()` and `subscribers()` when it is (at once, where `reportUnreachable` named a crashed member,
 * and soon after on the others); listeners come off with `off()` or the function `on()`
 * returns; a manager that has left is disconnected, lists nothing and hears nothing.
 * With `multiMember: false` only the cases for one node run.
 */
import { expect } from 'chai';
import type { ClusterManager, NodeInfo } from '../../backend/src/cluster/types.js';

export interface ClusterManagerFixture {
  /** A new manager on this fixture's cluster, not joined yet. */
  manager(): ClusterManager;
  /** Makes a joined manager vanish without leave() (a crash, a lost lease). */
  crash?(manager: ClusterManager): Promise<void>;
  /** Leaves every manager the fixture made and frees the cluster. */
  cleanup(): Promise<void>;
}

export interface ClusterManagerContractOptions {
  /** Whether one cluster has several members; false (a cluster of one) runs the single-node cases only. */
  multiMember: boolean;
  /** How long a change on one member may take to reach the others. */
  propagationMs: number;
  /** How long to watch for something that must not happen (a second event, a stale update). */
  quietMs: number;
  /** How long the others may take to drop a crashed member (with `crash`). */
  crashDetectionMs?: number;
  /** Per-test timeout (default 60 s). */
  timeoutMs?: number;
}

let counter = 0;
const run = Math.random().toString(36).slice(2, 8);

function nodeInfo(): NodeInfo {
  counter += 1;
  return { nodeId: `cm-${run}-${counter}`, host: '127.0.0.1', port: 20_000 + counter };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function sorted(values: readonly string[]): string[] {
  return [...values].sort();
}

function ids(nodes: NodeInfo[]): string[] {
  return sorted(nodes.map((n) => n.nodeId));
}

/** Waits, at most `ms`, until `read()` gives `want` (deep equality); fails with the last value read. */
async function converge<T>(what: string, read: () => T | Promise<T>, want: T, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const got = await read();
    if (JSON.stringify(got) === JSON.stringify(want)) return;
    if (Date.now() >= deadline) expect(got, `${what} (waited ${ms} ms)`).to.deep.equal(want);
    await sleep(20);
  }
}

/** Checks, for `ms`, at every turn of the event loop, that `read()` keeps giving `want`. */
async function steady<T>(what: string, read: () => T, want: T, ms: number): Promise<void> {
  const until = Date.now() + ms;
  do {
    expect(read(), what).to.deep.equal(want);
    await new Promise((r) => setImmediate(r));
  } while (Date.now() < until);
}

/** How long each step of a churn is watched for a stale update flipping it back. */
const CHURN_WATCH_MS = 25;

/** Every nodeLeft a manager reports, with what the manager said at that moment. */
interface Departure {
  nodeId: string;
  nodes: string[];
  node: NodeInfo | undefined;
  subscribers: string[];
}

function recordDepartures(m: ClusterManager, address = 'contract.watch'): Departure[] {
  const seen: Departure[] = [];
  m.on('nodeLeft', (nodeId) =>
    seen.push({
      nodeId,
      nodes: ids(m.nodes()),
      node: m.node(nodeId),
      subscribers: sorted(m.subscribers(address)),
    }),
  );
  return seen;
}

export function describeClusterManagerContract(
  name: string,
  factory: () => Promise<ClusterManagerFixture>,
  options: ClusterManagerContractOptions,
): void {
  const { propagationMs, quietMs } = options;

  describe(`ClusterManager contract: ${name}`, function () {
    this.timeout(options.timeoutMs ?? 60_000);
    let fx: ClusterManagerFixture;
    let m: ClusterManager;
    let self: NodeInfo;

    beforeEach(async () => {
      fx = await factory();
      m = fx.manager();
      self = nodeInfo();
    });
    afterEach(async () => {
      await fx?.cleanup();
    });

    it('names its kind', () => {
      expect(m.kind).to.be.a('string').and.have.length.greaterThan(0);
    });

    it('is connected from join to leave, not before nor after', async () => {
      expect(m.isConnected()).to.equal(false);
      await m.join(self);
      expect(m.isConnected()).to.equal(true);
      await m.leave();
      expect(m.isConnected()).to.equal(false);
    });

    it('knows itself once joined: nodes() and node() give the NodeInfo it joined with', async () => {
      expect(m.nodes()).to.deep.equal([]);
      expect(m.node(self.nodeId)).to.equal(undefined);
      await m.join(self);
      expect(m.nodes()).to.deep.equal([self]);
      expect(m.node(self.nodeId)).to.deep.equal(self);
      expect(m.node('nobody')).to.equal(undefined);
    });

    it('lists this node for an address as soon as addSubscription resolves, and no more once removeSubscription does', async () => {
      await m.join(self);
      const addresses = ['a', 'a.b', 'chat.append.x-1', '__sb.odd address/ä', 'a.'];
      for (const address of addresses) {
        expect(m.subscribers(address), address).to.deep.equal([]);
        await m.addSubscription(address);
        expect(m.subscribers(address), address).to.deep.equal([self.nodeId]);
      }
      expect(m.subscribers('a.b.c')).to.deep.equal([]);
      await m.removeSubscription('a.b');
      expect(m.subscribers('a.b')).to.deep.equal([]);
      for (const address of addresses.filter((a) => a !== 'a.b'))
        expect(m.subscribers(address), address).to.deep.equal([self.nodeId]);
      await m.removeSubscription('never-added');
      expect(m.subscribers('never-added')).to.deep.equal([]);
    });

    it('keeps one subscription per address and node: two adds, one remove, and it is gone', async () => {
      await m.join(self);
      await m.addSubscription('twice');
      await m.addSubscription('twice');
      expect(m.subscribers('twice')).to.deep.equal([self.nodeId]);
      await m.removeSubscription('twice');
      expect(m.subscribers('twice')).to.deep.equal([]);
      await sleep(quietMs);
      expect(m.subscribers('twice')).to.deep.equal([]);
    });

    it('keeps its own subscriptions as last set through quick churn, then and later', async () => {
      await m.join(self);
      for (let round = 0; round < 15; round++) {
        await m.addSubscription('churn');
        await steady(`round ${round}, added`, () => m.subscribers('churn'), [self.nodeId], CHURN_WATCH_MS);
        await m.removeSubscription('churn');
        await steady(`round ${round}, removed`, () => m.subscribers('churn'), [], CHURN_WATCH_MS);
      }
      await m.addSubscription('churn.kept');
      await m.removeSubscription('churn.kept');
      await m.addSubscription('churn.kept');
      await sleep(quietMs);
      expect(m.subscribers('churn')).to.deep.equal([]);
      expect(m.subscribers('churn.kept')).to.deep.equal([self.nodeId]);
    });

    it('re-adds at once after a remove: listed as soon as the add resolves, and still after the events settle', async () => {
      await m.join(self);
      for (let round = 0; round < 20; round++) {
        await m.addSubscription('readd');
        await m.removeSubscription('readd');
        await m.addSubscription('readd');
        expect(m.subscribers('readd'), `round ${round}`).to.deep.equal([self.nodeId]);
      }
      await sleep(quietMs);
      expect(m.subscribers('readd')).to.deep.equal([self.nodeId]);
      await m.removeSubscription('readd');
      await m.addSubscription('readd');
      await m.removeSubscription('readd');
      await sleep(quietMs);
      expect(m.subscribers('readd')).to.deep.equal([]);
    });

    it('registers and removes many addresses at once', async () => {
      await m.join(self);
      const addresses = Array.from({ length: 50 }, (_, i) => `many.${i}`);
      await Promise.all(addresses.map((a) => m.addSubscription(a)));
      for (const a of addresses) expect(m.subscribers(a), a).to.deep.equal([self.nodeId]);
      await Promise.all(addresses.map((a) => m.removeSubscription(a)));
      for (const a of addresses) expect(m.subscribers(a), a).to.deep.equal([]);
    });

    it('gives snapshots: later changes do not show in an array it returned, and changing one changes nothing', async () => {
      await m.join(self);
      await m.addSubscription('snap');
      const subs = m.subscribers('snap');
      const nodes = m.nodes();
      await m.removeSubscription('snap');
      expect(subs).to.deep.equal([self.nodeId]);
      await m.addSubscription('snap');
      (m.subscribers('snap') as string[]).push('intruder');
      (m.subscribers('snap') as string[]).length = 0;
      expect(m.subscribers('snap')).to.deep.equal([self.nodeId]);
      nodes.push({ nodeId: 'intruder', host: '127.0.0.1', port: 1 });
      expect(m.nodes()).to.deep.equal([self]);
      expect(m.node('intruder')).to.equal(undefined);
    });

    it('leaves at once, twice, or without having joined; a left manager lists no node and no subscriber', async () => {
      await m.leave(); // before join: nothing to do
      await m.join(self);
      await m.addSubscription('gone');
      const first = m.leave();
      await m.leave(); // resolves once the node has left, not before the first call is done
      expect(m.isConnected()).to.equal(false);
      expect(m.nodes()).to.deep.equal([]);
      await first;
      await m.leave();
      expect(m.isConnected()).to.equal(false);
      expect(m.nodes()).to.deep.equal([]);
      expect(m.node(self.nodeId)).to.equal(undefined);
      expect(m.subscribers('gone')).to.deep.equal([]);
    });

    it('takes listeners on and off: on() returns the function that removes one, off() removes one too', async () => {
      const listener = (): void => {};
      const off = m.on('nodeLeft', listener);
      expect(off).to.be.a('function');
      off();
      off(); // twice is harmless
      m.off('nodeLeft', listener); // so is removing one that is not there
      m.on('nodeLeft', listener);
      m.off('nodeLeft', listener);
      await m.join(self);
      await m.leave();
    });

    describe('shared multimap', () => {
      beforeEach(async () => {
        await m.join(self);
      });

      it('keeps a set of values per key: putting a value twice keeps one', async () => {
        const mm = m.multiMap('contract.mm');
        expect(await mm.get('k')).to.deep.equal([]);
        expect(await mm.entries()).to.deep.equal([]);
        await mm.put('k', 'v1');
        await mm.put('k', 'v1');
        await mm.put('k', 'v2');
        await mm.put('other', 'v1');
        expect(sorted(await mm.get('k'))).to.deep.equal(['v1', 'v2']);
        expect(await mm.get('other')).to.deep.equal(['v1']);
        expect((await mm.entries()).map(([k, v]) => `${k}=${v}`).sort()).to.deep.equal([
          'k=v1',
          'k=v2',
          'other=v1',
        ]);
      });

      it('removes one value, the key with its last value, and nothing for what is absent', async () => {
        const mm = m.multiMap('contract.mm');
        await mm.put('k', 'v1');
        await mm.put('k', 'v2');
        await mm.remove('k', 'v1');
        expect(await mm.get('k')).to.deep.equal(['v2']);
        await mm.remove('k', 'nope');
        await mm.remove('nokey', 'v2');
        expect(await mm.get('k')).to.deep.equal(['v2']);
        await mm.remove('k', 'v2');
        expect(await mm.get('k')).to.deep.equal([]);
        expect(await mm.entries()).to.deep.equal([]);
      });

      it('gives the same data for the same name, and keeps names and maps apart', async () => {
        await m.multiMap('contract.a').put('k', 'a');
        expect(await m.multiMap('contract.a').get('k')).to.deep.equal(['a']);
        expect(await m.multiMap('contract.b').get('k')).to.deep.equal([]);
        expect(await m.map('contract.a').get('k')).to.equal(undefined);
        expect(await m.map('a').get('k')).to.equal(undefined);
        await m.map('contract.a').putIfAbsent('k', 'plain');
        expect(await m.multiMap('contract.a').get('k')).to.deep.equal(['a']);
        expect(await m.map('contract.a').get('k')).to.equal('plain');
      });
    });

    describe('shared map', () => {
      beforeEach(async () => {
        await m.join(self);
      });

      it('puts into an empty key only, returning what the key held', async () => {
        const map = m.map('contract.map');
        expect(await map.get('k')).to.equal(undefined);
        expect(await map.putIfAbsent('k', 'first')).to.equal(undefined);
        expect(await map.putIfAbsent('k', 'second')).to.equal('first');
        expect(await map.get('k')).to.equal('first');
        expect(await map.entries()).to.deep.equal([['k', 'first']]);
      });

      it('replaces the expected value only', async () => {
        const map = m.map('contract.map');
        expect(await map.replaceIfSame('k', 'x', 'y')).to.equal(false);
        expect(await map.get('k')).to.equal(undefined);
        await map.putIfAbsent('k', 'v1');
        expect(await map.replaceIfSame('k', 'other', 'v2')).to.equal(false);
        expect(await map.get('k')).to.equal('v1');
        expect(await map.replaceIfSame('k', 'v1', 'v2')).to.equal(true);
        expect(await map.get('k')).to.equal('v2');
      });

      it('removes the expected value only, after which the key is free again', async () => {
        const map = m.map('contract.map');
        expect(await map.removeIfSame('k', 'v1')).to.equal(false);
        await map.putIfAbsent('k', 'v1');
        expect(await map.removeIfSame('k', 'v2')).to.equal(false);
        expect(await map.get('k')).to.equal('v1');
        expect(await map.removeIfSame('k', 'v1')).to.equal(true);
        expect(await map.get('k')).to.equal(undefined);
        expect(await map.entries()).to.deep.equal([]);
        expect(await map.putIfAbsent('k', 'v3')).to.equal(undefined);
      });

      it('keeps keys and values as given (NUL, non-ASCII, JSON)', async () => {
        const map = m.map('contract.map');
        const key = 'room\u0000ünïcødé 🙂';
        const value = JSON.stringify({ s: 'séssion', n: 'node\u0000', k: '"quoted"' });
        await map.putIfAbsent(key, value);
        expect(await map.get(key)).to.equal(value);
        expect(await map.get('room')).to.equal(undefined);
        expect(await map.entries()).to.deep.equal([[key, value]]);
        expect(await map.replaceIfSame(key, value, `${value} `)).to.equal(true);
        expect(await map.removeIfSame(key, `${value} `)).to.equal(true);
      });

      it('gives a key to exactly one of 50 concurrent putIfAbsent calls; the others get its value', async () => {
        const map = m.map('contract.map');
        const held = await Promise.all(Array.from({ length: 50 }, (_, i) => map.putIfAbsent('k', `v${i}`)));
        const winners = held.map((h, i) => (h === undefined ? `v${i}` : undefined)).filter(Boolean);
        expect(winners).to.have.length(1);
        expect(held.filter((h) => h !== undefined && h !== winners[0])).to.deep.equal([]);
        expect(await map.get('k')).to.equal(winners[0]);
      });

      it('lets exactly one of 20 concurrent replaceIfSame calls from one value succeed', async () => {
        const map = m.map('contract.map');
        await map.putIfAbsent('k', 'start');
        const done = await Promise.all(
          Array.from({ length: 20 }, (_, i) => map.replaceIfSame('k', 'start', `v${i}`)),
        );
        expect(done.filter(Boolean)).to.have.length(1);
        expect(await map.get('k')).to.equal(`v${done.indexOf(true)}`);
      });
    });

    if (!options.multiMember) return;

    describe('across members', () => {
      /** Joins `count` more managers of the fixture's cluster. */
      async function members(count: number): Promise<Array<{ m: ClusterManager; info: NodeInfo }>> {
        const made = Array.from({ length: count }, () => ({ m: fx.manager(), info: nodeInfo() }));
        await Promise.all(made.map(({ m: x, info }) => x.join(info)));
        return made;
      }

      it('sees every member: nodes() and node() converge to all joined members on each', async () => {
        await m.join(self);
        const others = await members(2);
        const all = sorted([self.nodeId, ...others.map((o) => o.info.nodeId)]);
        for (const x of [m, ...others.map((o) => o.m)]) {
          await converge('members', () => ids(x.nodes()), all, propagationMs);
        }
        for (const o of others) expect(m.node(o.info.nodeId)).to.deep.equal(o.info);
        expect(others[0]!.m.node(self.nodeId)).to.deep.equal(self);
      });

      it('shows a member that joins, as soon as join() resolves, the members and subscriptions already there', async () => {
        await m.join(self);
        const [b] = await members(1);
        await m.addSubscription('there');
        await b!.m.addSubscription('there');
        await b!.m.addSubscription('only.b');
        const late = fx.manager();
        const info = nodeInfo();
        await late.join(info);
        expect(ids(late.nodes())).to.deep.equal(sorted([self.nodeId, b!.info.nodeId, info.nodeId]));
        expect(late.node(b!.info.nodeId)).to.deep.equal(b!.info);
        expect(sorted(late.subscribers('there'))).to.deep.equal(sorted([self.nodeId, b!.info.nodeId]));
        expect(late.subscribers('only.b')).to.deep.equal([b!.info.nodeId]);
      });

      it("sees another member's subscriptions come and go, per node", async () => {
        await m.join(self);
        const [b, c] = await members(2);
        await b!.m.addSubscription('shared');
        await converge(
          'b subscribed, seen on a',
          () => m.subscribers('shared'),
          [b!.info.nodeId],
          propagationMs,
        );
        await c!.m.addSubscription('shared');
        await m.addSubscription('shared');
        const all = sorted([self.nodeId, b!.info.nodeId, c!.info.nodeId]);
        for (const x of [m, b!.m, c!.m]) {
          await converge('all subscribed', () => sorted(x.subscribers('shared')), all, propagationMs);
        }
        await b!.m.removeSubscription('shared');
        const rest = sorted([self.nodeId, c!.info.nodeId]);
        for (const x of [m, b!.m, c!.m]) {
          await converge('b unsubscribed', () => sorted(x.subscribers('shared')), rest, propagationMs);
        }
      });

      it('sees many subscriptions another member registers at once, and their removal', async () => {
        await m.join(self);
        const [b] = await members(1);
        const addresses = Array.from({ length: 30 }, (_, i) => `bulk.${i}`);
        await Promise.all(addresses.map((a) => b!.m.addSubscription(a)));
        const everywhere = (want: string[]) => () =>
          addresses.every((a) => JSON.stringify(m.subscribers(a)) === JSON.stringify(want));
        await converge('30 addresses on b, seen on a', everywhere([b!.info.nodeId]), true, propagationMs);
        await Promise.all(addresses.map((a) => b!.m.removeSubscription(a)));
        await converge('30 addresses removed, seen on a', everywhere([]), true, propagationMs);
      });

      it("settles everywhere on a member's last subscription state after quick churn", async () => {
        await m.join(self);
        const [b] = await members(1);
        for (let round = 0; round < 10; round++) {
          await b!.m.addSubscription('flap');
          await b!.m.removeSubscription('flap');
        }
        await b!.m.addSubscription('flap.on');
        await b!.m.removeSubscription('flap.on');
        await b!.m.addSubscription('flap.on');
        await converge('flap.on on a', () => m.subscribers('flap.on'), [b!.info.nodeId], propagationMs);
        await converge('flap on a', () => m.subscribers('flap'), [], propagationMs);
        await sleep(quietMs);
        expect(m.subscribers('flap')).to.deep.equal([]);
        expect(m.subscribers('flap.on')).to.deep.equal([b!.info.nodeId]);
        expect(b!.m.subscribers('flap')).to.deep.equal([]);
        expect(b!.m.subscribers('flap.on')).to.deep.equal([b!.info.nodeId]);
      });

      it('shares maps and multimaps by name: what one member wrote, another reads as soon as the write resolved', async () => {
        await m.join(self);
        const [b] = await members(1);
        await m.multiMap('contract.shared').put('room', 'alice');
        await b!.m.multiMap('contract.shared').put('room', 'bob');
        expect(sorted(await b!.m.multiMap('contract.shared').get('room'))).to.deep.equal(['alice', 'bob']);
        await b!.m.multiMap('contract.shared').remove('room', 'alice');
        expect(await m.multiMap('contract.shared').get('room')).to.deep.equal(['bob']);
        expect(await m.map('contract.shared').putIfAbsent('name', 'a')).to.equal(undefined);
        expect(await b!.m.map('contract.shared').putIfAbsent('name', 'b')).to.equal('a');
        expect(await b!.m.map('contract.shared').replaceIfSame('name', 'a', 'b')).to.equal(true);
        expect(await m.map('contract.shared').get('name')).to.equal('b');
        expect(await m.map('contract.shared').removeIfSame('name', 'a')).to.equal(false);
        expect(await m.map('contract.shared').removeIfSame('name', 'b')).to.equal(true);
        expect(await b!.m.map('contract.shared').entries()).to.deep.equal([]);
      });

      it('gives a key to exactly one of concurrent putIfAbsent and replaceIfSame calls from every member', async () => {
        await m.join(self);
        const all = [m, ...(await members(2)).map((o) => o.m)];
        const held = await Promise.all(
          Array.from({ length: 60 }, (_, i) =>
            all[i % all.length]!.map('contract.race').putIfAbsent('k', `v${i}`),
          ),
        );
        expect(held.filter((h) => h === undefined)).to.have.length(1);
        const winner = `v${held.indexOf(undefined)}`;
        expect(held.filter((h) => h !== undefined && h !== winner)).to.deep.equal([]);
        const replaced = await Promise.all(
          Array.from({ length: 30 }, (_, i) =>
            all[i % all.length]!.map('contract.race').replaceIfSame('k', winner, `r${i}`),
          ),
        );
        expect(replaced.filter(Boolean)).to.have.length(1);
        expect(await all[1]!.map('contract.race').get('k')).to.equal(`r${replaced.indexOf(true)}`);
      });

      it('tells the others once when a member leaves, with it already gone from nodes(), node() and subscribers()', async () => {
        const onA = recordDepartures(m);
        await m.join(self);
        const [b, c] = await members(2);
        const onB = recordDepartures(b!.m);
        const onC = recordDepartures(c!.m);
        for (const x of [m, b!.m, c!.m]) await x.addSubscription('contract.watch');
        const all = sorted([self.nodeId, b!.info.nodeId, c!.info.nodeId]);
        for (const x of [m, b!.m, c!.m]) {
          await converge('all subscribed', () => sorted(x.subscribers('contract.watch')), all, propagationMs);
        }
        // Within the propagation bound, not only once a lease would have expired.
        await b!.m.leave();
        const rest = sorted([self.nodeId, c!.info.nodeId]);
        for (const [x, seen] of [
          [m, onA],
          [c!.m, onC],
        ] as const) {
          await converge('nodeLeft', () => seen.map((d) => d.nodeId), [b!.info.nodeId], propagationMs);
          expect(seen[0]).to.deep.equal({
            nodeId: b!.info.nodeId,
            nodes: rest,
            node: undefined,
            subscribers: rest,
          });
          expect(ids(x.nodes())).to.deep.equal(rest);
          expect(sorted(x.subscribers('contract.watch'))).to.deep.equal(rest);
        }
        await sleep(quietMs);
        expect(onA.map((d) => d.nodeId)).to.deep.equal([b!.info.nodeId]);
        expect(onC.map((d) => d.nodeId)).to.deep.equal([b!.info.nodeId]);
        expect(onB).to.deep.equal([]);
      });

      it('leaves no trace for a member that joins afterwards', async () => {
        await m.join(self);
        const [b] = await members(1);
        await b!.m.addSubscription('left.behind');
        await m.map('contract.kept').putIfAbsent('k', 'v');
        await converge('b subscribed', () => m.subscribers('left.behind'), [b!.info.nodeId], propagationMs);
        await b!.m.leave();
        await converge('b gone', () => ids(m.nodes()), [self.nodeId], propagationMs);
        const late = fx.manager();
        const info = nodeInfo();
        await late.join(info);
        expect(ids(late.nodes())).to.deep.equal(sorted([self.nodeId, info.nodeId]));
        expect(late.subscribers('left.behind')).to.deep.equal([]);
        expect(late.node(b!.info.nodeId)).to.equal(undefined);
        // Shared data is the cluster's, not the member's: it stays.
        expect(await late.map('contract.kept').get('k')).to.equal('v');
      });

      it('tells the others once when a member leaves twice, and never tells a member about itself', async () => {
        const onA = recordDepartures(m);
        await m.join(self);
        const [b] = await members(1);
        const onB = recordDepartures(b!.m);
        await converge('b seen', () => ids(m.nodes()).length, 2, propagationMs);
        await Promise.all([b!.m.leave(), b!.m.leave()]);
        await b!.m.leave();
        await converge('nodeLeft', () => onA.map((d) => d.nodeId), [b!.info.nodeId], propagationMs);
        await sleep(quietMs);
        expect(onA.map((d) => d.nodeId)).to.deep.equal([b!.info.nodeId]);
        expect(onB).to.deep.equal([]);
      });

      it('calls listeners registered before join, stops calling one taken off, and keeps calling the others', async () => {
        const kept: string[] = [];
        const byOff: string[] = [];
        const byReturned: string[] = [];
        m.on('nodeLeft', (id) => kept.push(id));
        const offListener = (id: string): void => void byOff.push(id);
        m.on('nodeLeft', offListener);
        const unsubscribe = m.on('nodeLeft', (id) => byReturned.push(id));
        await m.join(self);
        const [b, c] = await members(2);
        await converge('all seen', () => ids(m.nodes()).length, 3, propagationMs);
        await b!.m.leave();
        await converge('b left', () => kept, [b!.info.nodeId], propagationMs);
        expect(byOff).to.deep.equal([b!.info.nodeId]);
        expect(byReturned).to.deep.equal([b!.info.nodeId]);
        m.off('nodeLeft', offListener);
        unsubscribe();
        await c!.m.leave();
        await converge('c left', () => kept, [b!.info.nodeId, c!.info.nodeId], propagationMs);
        await sleep(quietMs);
        expect(byOff).to.deep.equal([b!.info.nodeId]);
        expect(byReturned).to.deep.equal([b!.info.nodeId]);
      });

      it('keeps telling the other listeners, and keeps its view, when a listener throws', async () => {
        m.on('nodeLeft', () => {
          throw new Error('a broken listener');
        });
        const seen: string[] = [];
        m.on('nodeLeft', (id) => seen.push(id));
        await m.join(self);
        const [b, c] = await members(2);
        await converge('all seen', () => ids(m.nodes()).length, 3, propagationMs);
        await b!.m.leave();
        await converge('b left, told', () => seen, [b!.info.nodeId], propagationMs);
        await converge(
          'b left, view',
          () => ids(m.nodes()),
          sorted([self.nodeId, c!.info.nodeId]),
          propagationMs,
        );
        await c!.m.addSubscription('after.throw');
        await converge('c subscribed', () => m.subscribers('after.throw'), [c!.info.nodeId], propagationMs);
        await c!.m.leave();
        await converge('c left, told', () => seen, [b!.info.nodeId, c!.info.nodeId], propagationMs);
        await converge('c left, view', () => ids(m.nodes()), [self.nodeId], propagationMs);
      });

      it('tells a member that has left about nothing', async () => {
        await m.join(self);
        const [b] = await members(1);
        const onB = recordDepartures(b!.m);
        await converge('b seen', () => ids(m.nodes()).length, 2, propagationMs);
        const onA = recordDepartures(m);
        await m.leave();
        await converge('a left, seen on b', () => onB.map((d) => d.nodeId), [self.nodeId], propagationMs);
        await b!.m.leave();
        await sleep(quietMs);
        expect(onA).to.deep.equal([]);
        expect(m.nodes()).to.deep.equal([]);
      });

      if (options.crashDetectionMs !== undefined) {
        const crashDetectionMs = options.crashDetectionMs;

        it('drops a member that vanishes without leaving: nodeLeft once, with it gone from routing, and not shown to a newcomer', async function () {
          this.timeout(Math.max(60_000, 3 * crashDetectionMs + 30_000));
          if (!fx.crash) throw new Error('crashDetectionMs is set but the fixture has no crash()');
          const onA = recordDepartures(m);
          await m.join(self);
          const [b, c] = await members(2);
          await b!.m.addSubscription('contract.watch');
          await m.addSubscription('contract.watch');
          const both = sorted([self.nodeId, b!.info.nodeId]);
          await converge('subscribed', () => sorted(m.subscribers('contract.watch')), both, propagationMs);
          await converge(
            'subscribed on c',
            () => sorted(c!.m.subscribers('contract.watch')),
            both,
            propagationMs,
          );
          await fx.crash(b!.m);
          const rest = sorted([self.nodeId, c!.info.nodeId]);
          await converge(
            'nodeLeft for the crashed member',
            () => onA.map((d) => d.nodeId),
            [b!.info.nodeId],
            crashDetectionMs,
          );
          expect(onA[0]).to.deep.equal({
            nodeId: b!.info.nodeId,
            nodes: rest,
            node: undefined,
            subscribers: [self.nodeId],
          });
          await converge('c drops it too', () => ids(c!.m.nodes()), rest, crashDetectionMs);
          expect(c!.m.subscribers('contract.watch')).to.deep.equal([self.nodeId]);
          const late = fx.manager();
          const info = nodeInfo();
          await late.join(info);
          expect(ids(late.nodes())).to.deep.equal(sorted([...rest, info.nodeId]));
          expect(late.subscribers('contract.watch')).to.deep.equal([self.nodeId]);
          await sleep(quietMs);
          expect(onA.map((d) => d.nodeId)).to.deep.equal([b!.info.nodeId]);
        });

        it('drops a crashed member reported unreachable at once, there and soon on the others, not waiting for its lease', async function () {
          this.timeout(Math.max(60_000, 3 * crashDetectionMs + 30_000));
          const onA = recordDepartures(m);
          await m.join(self);
          const [b, c] = await members(2);
          await b!.m.addSubscription('contract.gone');
          const all = sorted([self.nodeId, b!.info.nodeId, c!.info.nodeId]);
          await converge('all seen on c', () => ids(c!.m.nodes()), all, propagationMs);
          await converge(
            'b subscribed',
            () => m.subscribers('contract.gone'),
            [b!.info.nodeId],
            propagationMs,
          );
          await fx.crash!(b!.m);
          m.reportUnreachable(self.nodeId, 'not about itself');
          m.reportUnreachable('never-seen', 'not about a node it does not know');
          m.reportUnreachable(b!.info.nodeId, 'its port refuses connections');
          const rest = sorted([self.nodeId, c!.info.nodeId]);
          // At once, here: before any lease could lapse.
          expect(ids(m.nodes())).to.deep.equal(rest);
          expect(m.subscribers('contract.gone')).to.deep.equal([]);
          expect(onA.map((d) => d.nodeId)).to.deep.equal([b!.info.nodeId]);
          m.reportUnreachable(b!.info.nodeId, 'twice');
          // Sooner than a lapsed lease would tell c (Hazelcast's test lease: 4 s, refreshed every 1.3 s).
          await converge('c drops it too', () => ids(c!.m.nodes()), rest, Math.min(propagationMs, 1_500));
          expect(c!.m.subscribers('contract.gone')).to.deep.equal([]);
          await sleep(quietMs);
          expect(onA.map((d) => d.nodeId)).to.deep.equal([b!.info.nodeId]);
          expect(ids(m.nodes())).to.deep.equal(rest);
        });
      }
    });
  });
}
