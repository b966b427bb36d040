/**
 * The position check's two halves without a bus: the writer's room tops (sent once a room is
 * quiet, batched, bounded) and a node's room watch (reads and re-delivers only what it missed).
 */
import { expect } from 'chai';
import { type RoomTop, RoomTops } from '../../backend/src/chat/room-tops.js';
import { RoomWatch } from '../../backend/src/chat/room-watch.js';
import type { ChatMessage } from '../../backend/src/store/types.js';

const msg = (room: string, seq: number): ChatMessage => ({
  room,
  seq,
  id: `id-${seq}`,
  clientMsgId: `c-${seq}`,
  user: 'u',
  text: `t${seq}`,
  ts: 0,
});

describe('RoomTops (the writer sends a room top once it is quiet)', () => {
  let now = 0;
  let sent: RoomTop[][] = [];
  const tops = (quietMs = 1_000, extra: { maxRooms?: number; maxPerBeacon?: number } = {}) =>
    new RoomTops({ quietMs, send: (t) => sent.push(t), now: () => now, ...extra });
  beforeEach(() => {
    now = 0;
    sent = [];
  });

  it('sends nothing while a room is busy, then its highest seq once it has been quiet for quietMs', () => {
    const t = tops();
    for (let seq = 1; seq <= 5; seq++) {
      now += 300;
      t.published('a', seq);
      t.tick();
    }
    expect(sent).to.deep.equal([]);
    now += 999;
    t.tick();
    expect(sent).to.deep.equal([]);
    now += 1;
    t.tick();
    expect(sent).to.deep.equal([[['a', 5]]]);
    now += 5_000;
    t.tick();
    expect(sent, 'once per quiet period').to.have.length(1);
    t.stop();
  });

  it('batches the rooms that went quiet in one tick, at most maxPerBeacon per send', () => {
    const t = tops(1_000, { maxPerBeacon: 2 });
    for (const room of ['a', 'b', 'c']) t.published(room, 7);
    now = 1_000;
    t.tick();
    expect(sent).to.deep.equal([
      [
        ['a', 7],
        ['b', 7],
      ],
      [['c', 7]],
    ]);
    t.stop();
  });

  it('keeps at most maxRooms pending (the oldest go out at once) and sends the rest on stop', () => {
    const t = tops(1_000, { maxRooms: 2 });
    t.published('a', 1);
    t.published('b', 2);
    t.published('c', 3);
    expect(sent).to.deep.equal([[['a', 1]]]);
    expect(t.size).to.equal(2);
    t.stop();
    expect(sent.slice(1)).to.deep.equal([
      [
        ['b', 2],
        ['c', 3],
      ],
    ]);
    t.published('d', 4);
    expect(t.size, 'nothing after stop').to.equal(0);
  });

  it('is off with quietMs 0', () => {
    const t = tops(0);
    t.published('a', 1);
    expect(t.size).to.equal(0);
    t.stop();
    expect(sent).to.deep.equal([]);
  });
});

describe('RoomWatch (a node fills publishes it missed)', () => {
  function watch(stored: ChatMessage[], consumers: Record<string, number> = { a: 1 }) {
    const reads: [string, number, number][] = [];
    const redelivered: ChatMessage[] = [];
    const w = new RoomWatch({
      consumersOf: (room) => consumers[room] ?? 0,
      read: (room, afterSeq, limit) => {
        reads.push([room, afterSeq, limit]);
        return Promise.resolve(stored.filter((m) => m.room === room && m.seq > afterSeq).slice(0, limit));
      },
      redeliver: (m) => {
        redelivered.push(m);
        w.saw(m.room, m.seq); // as the bus's tap does for a local publish
      },
      maxRead: 10,
    });
    return { w, reads, redelivered };
  }
  const settle = () => new Promise((r) => setTimeout(r, 0));

  it('reads nothing when it saw the top', async () => {
    const { w, reads } = watch([msg('a', 1), msg('a', 2)]);
    w.saw('a', 2);
    w.tops([['a', 2]]);
    await settle();
    expect(reads).to.deep.equal([]);
  });

  it('reads after what it saw and re-delivers the missed messages, up to the top, in order', async () => {
    const { w, reads, redelivered } = watch([1, 2, 3, 4, 5].map((s) => msg('a', s)));
    w.saw('a', 2);
    w.tops([['a', 4]]);
    await settle();
    expect(reads).to.deep.equal([['a', 2, 10]]);
    expect(redelivered.map((m) => m.seq)).to.deep.equal([3, 4]);
    expect(w.stats()).to.deep.equal({ rooms: 1, redelivered: 2 });
    w.tops([['a', 4]]);
    await settle();
    expect(reads, 'filled: no second read').to.have.length(1);
  });

  it('re-delivers only the top of a room it never saw, and ignores rooms without consumers here', async () => {
    const { w, reads, redelivered } = watch([msg('a', 1), msg('a', 2), msg('b', 1)]);
    w.tops([
      ['a', 2],
      ['b', 1],
    ]);
    await settle();
    expect(reads).to.deep.equal([['a', 1, 10]]);
    expect(redelivered.map((m) => [m.room, m.seq])).to.deep.equal([['a', 2]]);
  });

  it('forgets rooms whose consumers left', () => {
    const consumers: Record<string, number> = { a: 1 };
    const { w } = watch([], consumers);
    w.saw('a', 3);
    expect(w.stats().rooms).to.equal(1);
    consumers.a = 0;
    w.sweep();
    expect(w.stats().rooms).to.equal(0);
  });
});
