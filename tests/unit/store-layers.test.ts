/**
 * The store layers a node runs (store/node-store.ts): the recent tail and load shedding. The
 * contract suite runs on the embedded store behind both layers; the rest pins down what the
 * layers add: reads answered from memory, bounds, stale tails dropped, and fast refusals.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { EmbeddedMessageStore } from '../../backend/src/store/embedded.js';
import { LoadSheddingStore } from '../../backend/src/store/load-shed.js';
import { layerNodeStore } from '../../backend/src/store/node-store.js';
import { RecentTailStore } from '../../backend/src/store/recent-tail.js';
import { StoreError } from '../../backend/src/store/types.js';
import type { AppendInput, AppendResult, ChatMessage, MessageStore } from '../../backend/src/store/types.js';
import { describeMessageStoreContract } from '../contract/message-store.contract.js';

const LAYERS = { tailMessagesPerRoom: 50, tailBytesPerNode: 1 << 20, maxInFlight: 1000, slowMs: 60_000 };

describeMessageStoreContract('embedded behind the recent tail and load shedding', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sb-store-layers-'));
  const made: MessageStore[] = [];
  const openStore = async (): Promise<MessageStore> => {
    const { store } = layerNodeStore(new EmbeddedMessageStore(join(dir, 'messages')), LAYERS);
    made.push(store);
    await store.open();
    return store;
  };
  return {
    store: await openStore(),
    reopen: openStore,
    cleanup: async () => {
      await Promise.all(made.map((s) => s.close()));
      await rm(dir, { recursive: true, force: true });
    },
  };
});

/** Counts the calls that reach the store behind a layer. */
function counted(inner: MessageStore): { store: MessageStore; calls: string[] } {
  const calls: string[] = [];
  const store: MessageStore = {
    kind: inner.kind,
    open: () => inner.open(),
    epoch: () => inner.epoch(),
    append: (i) => (calls.push('append'), inner.append(i)),
    history: (r, q) => (calls.push('history'), inner.history(r, q)),
    latest: (r, l) => (calls.push('latest'), inner.latest(r, l)),
    lastSeq: (r) => (calls.push('lastSeq'), inner.lastSeq(r)),
    isHealthy: () => inner.isHealthy(),
    flush: () => inner.flush(),
    close: () => inner.close(),
  };
  return { store, calls };
}

const msg = (room: string, i: number, extra: Partial<AppendInput> = {}): AppendInput => ({
  room,
  user: 'u',
  clientMsgId: `m${i}`,
  text: `text ${i}`,
  ...extra,
});

describe('RecentTailStore', function () {
  this.timeout(30_000);
  let dir: string;
  let base: EmbeddedMessageStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-tail-'));
    base = new EmbeddedMessageStore(join(dir, 'messages'));
    await base.open();
  });
  afterEach(async () => {
    await base.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('loads a room once, then answers joins, replays and gap fills within the tail from memory', async () => {
    for (let i = 0; i < 80; i++) await base.append(msg('r', i));
    const { store, calls } = counted(base);
    const tail = new RecentTailStore(store, { perRoom: 50, perNodeBytes: 1 << 20 });
    const [a, b] = await Promise.all([tail.lastSeq('r'), tail.lastSeq('r')]);
    expect([a, b]).to.deep.equal([80, 80]);
    expect(calls).to.deep.equal(['latest']);
    expect((await tail.latest('r', 10)).map((m) => m.seq)).to.deep.equal([
      71, 72, 73, 74, 75, 76, 77, 78, 79, 80,
    ]);
    expect((await tail.history('r', { afterSeq: 40, limit: 501 })).length).to.equal(40);
    expect(
      (await tail.history('r', { afterSeq: 60, beforeSeq: 63, limit: 5 })).map((m) => m.seq),
    ).to.deep.equal([61, 62]);
    expect((await tail.append(msg('r', 79))).duplicate, 'a resend in the tail').to.equal(true);
    expect(calls).to.deep.equal(['latest']);
    const stored = await tail.append(msg('r', 80));
    expect(stored.message.seq).to.equal(81);
    expect(await tail.lastSeq('r')).to.equal(81);
    expect(calls).to.deep.equal(['latest', 'append']);
    // Older than the tail: to the store, and the answer is the store's.
    expect(await tail.history('r', { afterSeq: 0, limit: 5 })).to.deep.equal(
      await base.history('r', { afterSeq: 0, limit: 5 }),
    );
    expect(await tail.latest('r', 60)).to.deep.equal(await base.latest('r', 60));
    expect(calls.slice(2)).to.deep.equal(['history', 'latest']);
  });

  it('keeps at most perRoom messages per room and perNodeBytes in all, least recently used rooms out', async () => {
    const tail = new RecentTailStore(base, { perRoom: 20, perNodeBytes: 3 * 20 * 400 });
    for (const room of ['a', 'b', 'c', 'd']) for (let i = 0; i < 30; i++) await tail.append(msg(room, i));
    const stats = tail.stats();
    expect(stats.bytes).to.be.at.most(3 * 20 * 400);
    expect(stats.messages).to.be.at.most(stats.rooms * 20);
    expect(stats.rooms).to.be.below(4);
    expect(stats.drops.evicted, 'the least recently used rooms went').to.equal(4 - stats.rooms);
    expect((await tail.latest('a', 30)).map((m) => m.seq)).to.deep.equal(
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
  });

  it('drops a tail another node wrote behind (a seq above last + 1) and answers from the store again', async () => {
    const tail = new RecentTailStore(base, { perRoom: 50, perNodeBytes: 1 << 20 });
    await tail.append(msg('r', 1));
    await base.append(msg('r', 2)); // "another node"
    const third = await tail.append(msg('r', 3));
    expect(third.message.seq).to.equal(3);
    expect(tail.stats().drops, 'counted by reason').to.include({ other_writer: 1 });
    expect((await tail.history('r', { limit: 10 })).map((m) => m.clientMsgId)).to.deep.equal([
      'm1',
      'm2',
      'm3',
    ]);
  });

  it('takes in a message whose first write failed but landed, when its retry settles as a duplicate', async () => {
    // The database stored the write but its answer was lost (an outage): the caller saw an error,
    // then its retry is answered "duplicate" with the stored message. Readers of the tail must see it.
    let loseAnswer = false;
    const flaky: MessageStore = {
      ...counted(base).store,
      append: async (i) => {
        const r = await base.append(i);
        if (loseAnswer) {
          loseAnswer = false;
          throw new StoreError('UNAVAILABLE', 'no answer from the database');
        }
        return r;
      },
    };
    const tail = new RecentTailStore(flaky, { perRoom: 50, perNodeBytes: 1 << 20 });
    await tail.append(msg('r', 1));
    loseAnswer = true;
    let failed = false;
    await tail.append(msg('r', 2)).catch(() => (failed = true));
    expect(failed).to.equal(true);
    const retry = await tail.append(msg('r', 2));
    expect(retry).to.deep.include({ duplicate: true });
    expect(retry.message.seq).to.equal(2);
    expect(await tail.lastSeq('r')).to.equal(2);
    expect((await tail.history('r', { afterSeq: 1, limit: 10 })).map((m) => m.clientMsgId)).to.deep.equal([
      'm2',
    ]);
    // The next message joins the tail densely after it.
    expect((await tail.append(msg('r', 3))).message.seq).to.equal(3);
    expect((await tail.history('r', { limit: 10 })).map((m) => m.seq)).to.deep.equal([1, 2, 3]);
  });

  it('keeps no tail for rooms this node does not own, and forgets every tail on forget()', async () => {
    const { store, calls } = counted(base);
    const tail = new RecentTailStore(store, { perRoom: 50, perNodeBytes: 1 << 20 });
    let mine = false;
    tail.setOwnership(() => mine);
    await tail.append(msg('r', 1));
    await tail.lastSeq('r');
    await tail.lastSeq('r');
    expect(calls).to.deep.equal(['append', 'lastSeq', 'lastSeq']);
    expect(tail.stats().rooms).to.equal(0);
    mine = true;
    await tail.lastSeq('r');
    await tail.lastSeq('r');
    expect(tail.stats().rooms).to.equal(1);
    tail.forget();
    expect(tail.stats()).to.deep.include({ rooms: 0, messages: 0, bytes: 0, loads: 1 });
    expect(tail.stats().drops).to.include({ forgotten: 1 });
    await tail.lastSeq('r');
    expect(calls.slice(3)).to.deep.equal(['latest', 'latest']);
  });

  it('forgetRooms drops the tails (and loads under way) of the rooms named, and keeps the others', async () => {
    const { store, calls } = counted(base);
    const tail = new RecentTailStore(store, { perRoom: 50, perNodeBytes: 1 << 20 });
    for (const room of ['kept', 'moved', 'loading']) await base.append(msg(room, 1));
    await tail.lastSeq('kept');
    await tail.lastSeq('moved');
    expect(calls).to.deep.equal(['latest', 'latest']);
    // Another node takes 'moved' and 'loading' over (while 'loading' is being read) and writes.
    const loading = tail.lastSeq('loading');
    tail.forgetRooms((room) => room !== 'kept');
    await base.append(msg('moved', 2));
    await base.append(msg('loading', 2));
    expect(await loading).to.equal(1); // right when it was read, and not installed
    expect(tail.stats().rooms).to.equal(1);
    expect(tail.stats()).to.deep.include({
      loads: 3,
      drops: { moved: 1, not_owner: 0, other_writer: 0, evicted: 0, forgotten: 0 },
    });
    // Back here: 'kept' answers from memory; the two others are read again and see seq 2.
    expect(await tail.lastSeq('kept')).to.equal(1);
    expect(await tail.lastSeq('moved')).to.equal(2);
    expect(await tail.lastSeq('loading')).to.equal(2);
    expect(calls.slice(2)).to.deep.equal(['latest', 'latest', 'latest']);
  });

  it('a drain hands its tails over: the next owner serves them from memory, with what was stored after the announce', async () => {
    // Two nodes on one store: `old` owns the rooms and drains; `next` takes them over.
    for (let i = 0; i < 30; i++) await base.append(msg('busy', i));
    const old = new RecentTailStore(base, { perRoom: 50, perNodeBytes: 1 << 20 });
    await old.lastSeq('busy');
    await old.lastSeq('empty');
    const { store, calls } = counted(base);
    const next = new RecentTailStore(store, { perRoom: 50, perNodeBytes: 1 << 20 });
    let nextOwns = false;
    next.setOwnership(() => nextOwns);
    // 1. Announced (the newest 20 per room), while `old` still takes appends.
    const snapshot = old.handoverSnapshot(20, 1 << 20);
    expect(snapshot.map((r) => [r.room, r.messages.length])).to.deep.equal([
      ['empty', 0],
      ['busy', 20],
    ]);
    for (const { room, messages } of snapshot) next.expectHandover(room, messages, 5_000);
    await old.append(msg('busy', 30)); // stored after the announce
    // The room moves; a request at `next` waits for the rest instead of reading the store.
    nextOwns = true;
    const top = next.lastSeq('busy');
    // 2. Completed once `old` has nothing in flight: what it stored after the announced part.
    next.completeHandover('busy', old.tailAfter('busy', 30));
    next.completeHandover('empty', old.tailAfter('empty', 0));
    expect(await top).to.equal(31);
    expect(await next.lastSeq('empty')).to.equal(0);
    expect((await next.latest('busy', 3)).map((m) => m.clientMsgId)).to.deep.equal(['m28', 'm29', 'm30']);
    expect((await next.append(msg('busy', 30))).duplicate, 'a resend answered from memory').to.equal(true);
    expect(calls, 'nothing read from the store').to.deep.equal([]);
    expect(next.stats()).to.deep.include({ loads: 0, handedOver: 2, rooms: 2 });
    // Older than what was handed over: the store answers.
    expect((await next.history('busy', { afterSeq: 0, limit: 2 })).map((m) => m.seq)).to.deep.equal([1, 2]);
    expect(calls).to.deep.equal(['history']);
  });

  it('a handover that does not complete, or does not join up, costs one read of the store', async () => {
    for (let i = 0; i < 10; i++) await base.append(msg('lost', i));
    for (let i = 0; i < 10; i++) await base.append(msg('gap', i));
    const { store, calls } = counted(base);
    const next = new RecentTailStore(store, { perRoom: 50, perNodeBytes: 1 << 20 });
    const tailOf = async (room: string) => base.history(room, { afterSeq: 0, limit: 100 });
    // The old owner died after announcing: the first use waits at most waitMs, then reads.
    next.expectHandover('lost', (await tailOf('lost')).slice(0, 5), 50);
    expect(await next.lastSeq('lost')).to.equal(10);
    // The rest skips seqs (another node wrote in between): not installed, the store answers.
    next.expectHandover('gap', (await tailOf('gap')).slice(0, 5), 5_000);
    next.completeHandover('gap', (await tailOf('gap')).slice(6));
    expect(await next.lastSeq('gap')).to.equal(10);
    // Not dense, or another room's messages: refused at once.
    next.expectHandover('odd', (await tailOf('gap')).slice(0, 3), 5_000);
    expect(await next.lastSeq('odd')).to.equal(0);
    expect(calls).to.deep.equal(['latest', 'latest', 'latest']);
    expect(next.stats()).to.deep.include({ loads: 3, handedOver: 0 });
  });

  it('a room that moves with appends under way goes with what they store, once they are done', async () => {
    for (let i = 0; i < 5; i++) await base.append(msg('moving', i));
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const gated: MessageStore = {
      ...counted(base).store,
      append: async (input) => {
        await gate;
        if (input.clientMsgId === 'm-fail') throw new StoreError('UNAVAILABLE', 'timed out');
        return base.append(input);
      },
    };
    const old = new RecentTailStore(gated, { perRoom: 50, perNodeBytes: 1 << 20 });
    await old.lastSeq('moving');
    await old.lastSeq('failing');
    const underWay = [old.append(msg('moving', 5)), old.append(msg('moving', 6))];
    const failing = old.append({ ...msg('failing', 0), clientMsgId: 'm-fail' }).catch(() => 'failed');
    await new Promise((r) => setImmediate(r));
    // The owners change: both rooms move, each with appends under way here.
    const moved = old.handoverSnapshot(20, 1 << 20, (room) => room !== 'other');
    expect(moved.map((t) => [t.room, t.messages.length, t.busy])).to.deep.equal([
      ['failing', 0, true],
      ['moving', 5, true],
    ]);
    const rest = old.storedByAppendsUnderWay('moving');
    const restFailing = old.storedByAppendsUnderWay('failing');
    old.forgetRooms(() => true); // the old owner drops the tails of the rooms that moved
    const { store, calls } = counted(base);
    const next = new RecentTailStore(store, { perRoom: 50, perNodeBytes: 1 << 20 });
    for (const t of moved) next.expectHandover(t.room, t.messages, 5_000);
    const top = next.lastSeq('moving');
    open();
    await Promise.all([...underWay, failing]);
    const more = await rest;
    expect(more?.map((m) => [m.seq, m.clientMsgId])).to.deep.equal([
      [6, 'm5'],
      [7, 'm6'],
    ]);
    next.completeHandover('moving', more);
    expect(await top, 'the new owner holds what was stored while the room moved').to.equal(7);
    expect(calls, 'without reading the store').to.deep.equal([]);
    // An append that failed may have landed unseen: the new owner reads the store for that room.
    expect(await restFailing).to.equal(undefined);
    next.completeHandover('failing', undefined);
    expect(await next.lastSeq('failing')).to.equal(0);
    expect(calls).to.deep.equal(['latest']);
  });
});

/** A store whose calls hang until released: a stalled database. */
class StalledStore implements MessageStore {
  readonly kind = 'stalled';
  healthy = true;
  readonly waiting: Array<() => void> = [];
  private seq = 0;
  open = async (): Promise<void> => undefined;
  epoch = (): string => 'stalled-epoch';
  append = (input: AppendInput): Promise<AppendResult> =>
    new Promise((resolve) =>
      this.waiting.push(() =>
        resolve({
          duplicate: false,
          message: { ...input, seq: ++this.seq, id: `id${this.seq}`, ts: 0 } as ChatMessage,
        }),
      ),
    );
  history = async (): Promise<ChatMessage[]> => [];
  latest = async (): Promise<ChatMessage[]> => [];
  lastSeq = async (): Promise<number> => this.seq;
  isHealthy = (): boolean => this.healthy;
  flush = async (): Promise<void> => undefined;
  close = async (): Promise<void> => undefined;
  release(): void {
    for (const w of this.waiting.splice(0)) w();
  }
}

async function refusal(p: Promise<unknown>): Promise<StoreError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).to.be.instanceOf(StoreError);
  return err as StoreError;
}

describe('LoadSheddingStore', () => {
  it('refuses calls past maxInFlight at once with BUSY, and takes them again once calls return', async () => {
    const db = new StalledStore();
    const shed = new LoadSheddingStore(db, { maxInFlight: 3, slowMs: 60_000 });
    const out = [0, 1, 2].map((i) => shed.append(msg('r', i)));
    const err = await refusal(shed.append(msg('r', 3)));
    expect(err.code).to.equal('BUSY');
    expect(err.message).to.match(/store busy: 3 calls in flight/);
    expect(shed.stats()).to.deep.equal({ inFlight: 3, degraded: false, shed: 1 });
    db.release();
    await Promise.all(out);
    const again = shed.append(msg('r', 3));
    db.release();
    expect((await again).message.seq).to.equal(4);
  });

  it('while a call is out longer than slowMs: degraded, new calls refused, one probe at a time once it returns', async () => {
    let now = 0;
    const db = new StalledStore();
    const shed = new LoadSheddingStore(db, { maxInFlight: 100, slowMs: 1000, now: () => now });
    const first = shed.append(msg('r', 0));
    now = 500;
    const second = shed.append(msg('r', 1)); // not slow yet
    now = 1400; // the first is out past slowMs; the last one let through went out 900 ms ago
    expect(shed.isDegraded()).to.equal(true);
    expect((await refusal(shed.append(msg('r', 2)))).message).to.match(/database is slow/);
    db.release();
    await Promise.all([first, second]);
    expect(shed.isDegraded()).to.equal(false);
    db.healthy = false;
    expect(shed.isDegraded()).to.equal(true);
    const probe = shed.append(msg('r', 3)); // nothing out: one call may find out whether it is back
    expect((await refusal(shed.append(msg('r', 4)))).message).to.match(/unavailable/);
    db.release();
    await probe;
  });

  it('a call stuck on its own does not hold every write: one more goes out per slowMs, and once answered the stuck one no longer counts', async () => {
    let now = 0;
    const db = new StalledStore();
    const shed = new LoadSheddingStore(db, { maxInFlight: 100, slowMs: 1000, now: () => now });
    void shed.append(msg('r', 0)).catch(() => undefined); // never answered (stuck in the driver)
    const stuck = db.waiting.shift()!;
    now = 1500;
    expect(shed.isDegraded(), 'a call out past slowMs').to.equal(true);
    // A second call goes out, a slowMs after the last one; the ones right after it are refused.
    const probe = shed.append(msg('r', 1));
    expect((await refusal(shed.append(msg('r', 2)))).message).to.match(/database is slow/);
    now = 1600;
    db.release(); // the database answers the probe: it is fine, the first call is stuck elsewhere
    await probe;
    expect(shed.isDegraded(), 'the stuck call no longer counts').to.equal(false);
    const next = shed.append(msg('r', 3));
    db.release();
    expect((await next).message.clientMsgId).to.equal('m3');
    expect(shed.stats().inFlight, 'the stuck call is still out').to.equal(1);
    // A database that is really slow gets one call per slowMs, not a stream of them.
    const slow = shed.append(msg('r', 4)); // at 1600
    now = 2700;
    const another = shed.append(msg('r', 5)); // slow is past slowMs, and so is the last one let through
    expect((await refusal(shed.append(msg('r', 6)))).message).to.match(/database is slow/);
    now = 3000;
    expect((await refusal(shed.append(msg('r', 7)))).message).to.match(/database is slow/);
    db.release();
    await Promise.all([slow, another]);
    stuck();
  });
});
