import { expect } from 'chai';
import { ChunkedBits, ChunkedNumbers } from '../../../messages-lib/src/probe/chunked.js';
import { LatencyHistogram } from '../../../messages-lib/src/probe/histogram.js';
import { ProbeLedger, type StoredMessage, type Violation } from '../../../messages-lib/src/probe/ledger.js';
import { parseProbeArgs, UsageError } from '../../../messages-lib/src/probe/options.js';
import { type Verification, verify } from '../../../messages-lib/src/probe/verify.js';

/**
 * The streaming parts of the probe's verifier: deliveries are judged as they arrive and only
 * compact per-room state is kept, so these check the orders a real run produces (a delivery before
 * its ack), the online loss sweep of the canary, what memory it keeps, and the fixed histogram.
 */

const RUN = 'r2';

function room(n: number): ProbeLedger {
  return new ProbeLedger(
    RUN,
    Array.from({ length: n }, (_, i) => ({ user: `u${i}`, room: 'room-0' })),
  );
}

function msg(
  ledger: ProbeLedger,
  k: number,
  seq = k + 1,
): { seq: number; clientMsgId: string; text: string } {
  return { seq, clientMsgId: `cmid-${k}`, text: ledger.textFor(k) };
}

/** Messages k … k+count-1 sent by the room's 5 clients in turn, acked, and delivered to all 5; returns the next k. */
function cleanRound(ledger: ProbeLedger, k: number, count: number): number {
  for (const end = k + count; k < end; k++) {
    const t = k * 10;
    ledger.send(k % 5, k, `cmid-${k}`, t);
    ledger.ack(k, k + 1, t + 1);
    for (let c = 0; c < 5; c++) ledger.deliver(c, msg(ledger, k), t + 2);
  }
  return k;
}

/** What the run does during sending: checks the room's settled messages against `stored`, `page` at a time. */
function checkSegments(ledger: ProbeLedger, stored: readonly StoredMessage[], page = 500): void {
  const seg = ledger.beginStoredSegment('room-0');
  if (!seg) return;
  for (let cursor = ledger.storeCursor('room-0') ?? 0; cursor < seg.upTo;) {
    const messages = stored.filter((m) => m.seq > cursor).slice(0, page);
    const next = ledger.checkStoredSegment(seg, messages, messages.length >= page);
    if (next <= cursor) break;
    cursor = next;
  }
}

describe('probe streaming verifier', () => {
  it('delivered before its ack under the acked seq: intact, and its latency counted once per client', () => {
    const ledger = room(2);
    ledger.send(0, 0, 'cmid-0', 100);
    ledger.deliver(0, msg(ledger, 0), 103);
    ledger.deliver(1, msg(ledger, 0), 105);
    ledger.ack(0, 1, 110);
    ledger.storeHistory('room-0', { messages: [msg(ledger, 0)] });
    const v = verify(ledger, { from: 100, to: 200 });
    expect(v).to.include({ lost: 0, duplicates: 0, outOfOrder: 0, expected: 2, delivered: 2 });
    expect(v.latencyMs).to.deep.equal({ p50: 3, p99: 5, max: 5 });
    expect(ledger.settled()).to.equal(true);
  });

  it('delivered before its ack under another seq, then again under the acked one: two duplicates, not lost', () => {
    // The server stored it twice (seq 5 and 9) and acked the second.
    const ledger = room(2);
    ledger.send(0, 0, 'cmid-0', 100);
    for (const c of [0, 1]) ledger.deliver(c, msg(ledger, 0, 5), 103);
    for (const c of [0, 1]) ledger.deliver(c, msg(ledger, 0, 9), 104);
    ledger.ack(0, 9, 110);
    ledger.storeHistory('room-0', { messages: [msg(ledger, 0, 5), msg(ledger, 0, 9)] });
    const v = verify(ledger, { from: 100, to: 200 });
    expect(v.lost).to.equal(0);
    // Per client: the first delivery carried the wrong seq, the second repeated the clientMsgId;
    // the store holds it under two seqs.
    expect(v.duplicates).to.equal(2 * 2 + 1);
    expect(v.violations.map((x) => x.kind)).to.include.members(['seq-mismatch', 'duplicate', 'stored-twice']);
  });

  it('one member missing a message: found at the end, named, and the run does not settle', () => {
    const ledger = room(3);
    for (let k = 0; k < 3; k++) {
      ledger.send(k % 3, k, `cmid-${k}`, 100 + k);
      ledger.ack(k, k + 1, 101 + k);
      for (const c of [0, 1, 2]) if (!(c === 2 && k === 1)) ledger.deliver(c, msg(ledger, k), 102 + k);
    }
    expect(ledger.settled()).to.equal(false);
    ledger.storeHistory('room-0', { messages: [0, 1, 2].map((k) => msg(ledger, k)) });
    const v = verify(ledger, { from: 100, to: 200 });
    expect(v.lost).to.equal(1);
    expect(v.violations[0]).to.include({ kind: 'lost', user: 'u2', seq: 2, clientMsgId: 'cmid-1' });
  });

  it('the canary sweep: an acked message missing at a member after the limit is lost once, then forgotten', () => {
    const seen: Violation[] = [];
    const ledger = new ProbeLedger(
      RUN,
      [
        { user: 'a', room: 'room-0' },
        { user: 'b', room: 'room-0' },
      ],
      { onViolation: (v) => seen.push(v) },
    );
    for (let k = 0; k < 10; k++) {
      ledger.send(0, k, `cmid-${k}`, k * 1_000);
      ledger.ack(k, k + 1, k * 1_000 + 5);
      ledger.deliver(0, msg(ledger, k), k * 1_000 + 6);
      if (k !== 3) ledger.deliver(1, msg(ledger, k), k * 1_000 + 7);
    }
    ledger.send(0, 10, 'cmid-10', 10_000); // never answered
    expect(ledger.sweep(9_000, 30_000), 'nothing old enough yet').to.equal(0);
    expect(ledger.sweep(40_000, 30_000)).to.equal(1);
    expect(seen.map((v) => v.kind)).to.deep.equal(['lost']);
    expect(seen[0]).to.include({ user: 'b', clientMsgId: 'cmid-3' });
    expect(ledger.sweep(45_000, 30_000), 'not counted twice').to.equal(0);
    expect(ledger.progress().lost).to.equal(1);
    expect(ledger.counts().unackedOnline).to.equal(1);
    // A late copy of a judged message is neither a delivery to count nor a new loss.
    ledger.deliver(1, msg(ledger, 3), 46_000);
    expect(ledger.counts().outOfOrder, 'it came after seq 10').to.equal(1);
    expect(ledger.sweep(100_000, 30_000)).to.equal(0);
  });

  it('a canary keeps memory bounded: what it judged is dropped', () => {
    const ledger = room(5);
    const perRound = 5_000;
    let k = 0;
    for (let round = 0; round < 8; round++) {
      k = cleanRound(ledger, k, perRound);
      ledger.sweep(k * 10, 1_000);
      const held = ledger.held();
      expect(held.keys, `round ${round}`).to.be.below(2 * 4_096 + 200);
      expect(held.otherIds, `round ${round}`).to.be.below(4_096 + 200);
      expect(held.clientChunks, `round ${round}`).to.be.at.most(5 * 3 * 3);
    }
    expect(ledger.progress()).to.include({ lost: 0, duplicates: 0, outOfOrder: 0, acked: 8 * perRound });
  });

  it('a run settles what every member holds intact: memory stays flat, the verdict is the same', () => {
    const ledger = room(5);
    const perRound = 5_000;
    let k = 0;
    for (let round = 0; round < 8; round++) {
      k = cleanRound(ledger, k, perRound);
      expect(ledger.compact(), `round ${round}`).to.equal(perRound);
      const held = ledger.held();
      expect(held.keys, `round ${round}`).to.be.below(4_096 + 200);
      expect(held.otherIds, `round ${round}`).to.be.below(4_096 + 200);
    }
    ledger.storeHistory('room-0', {
      messages: Array.from({ length: k }, (_, i) => msg(ledger, i)),
      readAt: k * 10 + 100,
    });
    const v = verify(ledger, { from: 0, to: k * 10 });
    expect(v).to.include({ lost: 0, duplicates: 0, outOfOrder: 0, acked: k, delivered: 5 * k });
    expect(v.store).to.include({ checked: true, messages: k, lost: 0, duplicates: 0 });
  });

  it('a settled message is still checked: a late copy is a duplicate, and the store must hold it once under its seq', () => {
    const ledger = room(2);
    for (let k = 0; k < 6; k++) {
      ledger.send(0, k, `cmid-${k}`, k * 10);
      ledger.ack(k, k + 1, k * 10 + 1);
      for (const c of [0, 1]) ledger.deliver(c, msg(ledger, k), k * 10 + 2);
    }
    expect(ledger.compact()).to.equal(6);
    expect(ledger.compact(), 'settled once').to.equal(0);
    ledger.deliver(0, msg(ledger, 1), 100); // the same seq again
    ledger.deliver(1, msg(ledger, 2, 7), 101); // stored again under a new seq, delivered
    ledger.deliver(1, { ...msg(ledger, 3, 8), clientMsgId: 'someone-else' }, 102); // not ours
    expect(ledger.counts().duplicates).to.equal(2);
    ledger.storeHistory('room-0', {
      // 0 missing; 2 twice (3 and 7); 4 under another seq.
      messages: [
        msg(ledger, 1),
        msg(ledger, 2),
        msg(ledger, 3),
        msg(ledger, 4, 9),
        msg(ledger, 5),
        msg(ledger, 2, 7),
      ],
      readAt: 200,
    });
    const v = verify(ledger, { from: 0, to: 60 });
    expect(v.store).to.include({ lost: 1, duplicates: 2 });
    expect(v.violations.map((x) => x.kind)).to.include.members([
      'duplicate',
      'not-stored',
      'stored-twice',
      'stored-under-other-seq',
    ]);
    const twice = v.violations.find((x) => x.kind === 'stored-twice');
    expect(twice?.clientMsgId).to.equal('cmid-2');
  });

  it('a long run checks settled messages in the store as it goes and forgets them: memory stays flat, the verdict is the same', () => {
    const ledger = room(5);
    const stored: StoredMessage[] = [];
    const perRound = 5_000;
    let k = 0;
    for (let round = 0; round < 8; round++) {
      const from = k;
      k = cleanRound(ledger, k, perRound);
      for (let i = from; i < k; i++) stored.push(msg(ledger, i));
      ledger.compact();
      checkSegments(ledger, stored);
      const held = ledger.held();
      expect(ledger.uncheckedSettled('room-0'), `round ${round}`).to.equal(0);
      expect(held.identities, `round ${round}`).to.be.below(4_096 + 200);
      expect(held.settled, `round ${round}`).to.equal(0);
    }
    expect(ledger.storeCursor('room-0')).to.equal(k);
    // The final read goes on after the cursor: nothing is left, and nothing is missing.
    ledger.storeHistory('room-0', { messages: [], readAt: k * 10 + 100 });
    const v = verify(ledger, { from: 0, to: k * 10 });
    expect(v).to.include({ lost: 0, duplicates: 0, outOfOrder: 0, acked: k, delivered: 5 * k });
    expect(v.store).to.include({ checked: true, messages: k, lost: 0, duplicates: 0 });
  });

  it('a store check during the run finds what the final one would: missing, under another seq, stored or delivered again', () => {
    const verdict = (during: boolean) => {
      const ledger = room(5);
      const k = cleanRound(ledger, 0, 3_000);
      ledger.compact();
      // 2,000 and 2,500 under a later seq; 500 under seq 2,001 (2,000's, free now); 10 missing
      // (from position 1,000 on); the rest as acked.
      const stored = Array.from({ length: k }, (_, i) => msg(ledger, i))
        .map((m, i) => (i === 2_000 || i === 2_500 ? { ...m, seq: 10_000 + i } : m))
        .map((m, i) => (i === 500 ? { ...m, seq: 2_001 } : m))
        .filter((_, i) => i < 1_000 || i % 200 !== 7)
        .sort((a, b) => a.seq - b.seq);
      let rest = stored;
      if (during) {
        checkSegments(
          ledger,
          stored.filter((m) => m.seq <= k),
        );
        expect(ledger.held().settled, 'checked up to the first one missing').to.equal(k - 1_007);
        rest = stored.filter((m) => m.seq > k);
      }
      ledger.deliver(0, msg(ledger, 0), 99_999); // a checked message again, same seq
      ledger.deliver(1, msg(ledger, 1, 20_000), 99_999); // and under a new seq
      ledger.storeHistory('room-0', { messages: [...rest, msg(ledger, 2, 30_000)], readAt: 1e9 });
      return verify(ledger, { from: 0, to: k * 10 });
    };
    const during = verdict(true);
    const atEnd = verdict(false);
    for (const v of [during, atEnd]) {
      expect(v.store).to.include({ lost: 10, duplicates: 4 });
      expect(v).to.include({ lost: 10, duplicates: 2 + 4 });
    }
    // The same violations; a check during the run may find them in another order.
    const named = (v: Verification) => v.violations.map((x) => `${x.kind} ${x.clientMsgId ?? x.seq}`).sort();
    expect(named(during)).to.deep.equal(named(atEnd));
  });

  it('settling stops at the first message some member lacks, which is then judged lost', () => {
    const ledger = room(2);
    for (let k = 0; k < 4; k++) {
      ledger.send(0, k, `cmid-${k}`, k * 10);
      ledger.ack(k, k + 1, k * 10 + 1);
      ledger.deliver(0, msg(ledger, k), k * 10 + 2);
      if (k !== 1) ledger.deliver(1, msg(ledger, k), k * 10 + 2);
    }
    expect(ledger.compact()).to.equal(1);
    ledger.storeHistory('room-0', { messages: [0, 1, 2, 3].map((k) => msg(ledger, k)), readAt: 100 });
    const v = verify(ledger, { from: 0, to: 40 });
    expect(v.lost).to.equal(1);
    expect(v.violations.find((x) => x.kind === 'lost')).to.include({ user: 'u1', clientMsgId: 'cmid-1' });
  });

  it('deliveries after the sending window do not count toward gaps', () => {
    const ledger = room(1);
    ledger.openWindow(0);
    ledger.send(0, 0, 'cmid-0', 0);
    ledger.ack(0, 1, 1);
    ledger.deliver(0, msg(ledger, 0), 100);
    ledger.closeWindow(300);
    ledger.deliver(0, { seq: 2, clientMsgId: 'x', text: 'other' }, 5_000);
    expect(ledger.gaps(10_000)).to.deep.equal([200]);
  });

  it('the histogram: exact to the millisecond below 1 s, within 1 % above, mergeable', () => {
    const h = new LatencyHistogram();
    for (let i = 1; i <= 100; i++) h.add(i);
    expect(h.percentiles()).to.deep.equal({ p50: 50, p99: 99, max: 100 });
    const big = new LatencyHistogram();
    for (let i = 0; i < 99; i++) big.add(5);
    big.add(12_345);
    expect(big.quantile(99)).to.equal(5);
    expect(big.quantile(100)).to.equal(12_345);
    const slow = new LatencyHistogram();
    for (let i = 0; i < 10; i++) slow.add(4_000);
    slow.add(9_000);
    expect(slow.quantile(50)).to.be.within(4_000, 4_040);
    h.merge(LatencyHistogram.fromJSON(JSON.parse(JSON.stringify(big)) as never));
    expect(h.count).to.equal(200);
    expect(h.maxMs).to.equal(12_345);
    expect(h.countAtOrBelow(5)).to.equal(5 + 99);
  });

  it('chunked bits and numbers: set, test, drop', () => {
    const bits = new ChunkedBits();
    expect(bits.set(5)).to.equal(false);
    expect(bits.set(5)).to.equal(true);
    expect(bits.has(5)).to.equal(true);
    expect(bits.has(100_000)).to.equal(false);
    bits.set(100_000);
    expect(bits.chunkCount).to.equal(2);
    bits.dropBelow(50_000);
    expect(bits.has(5)).to.equal(false);
    expect(bits.set(5), 'below the floor: ignored').to.equal(false);
    expect(bits.chunkCount).to.equal(1);
    const nums = new ChunkedNumbers();
    expect(nums.push(7)).to.equal(0);
    expect(nums.get(0)).to.equal(7);
    expect(Number.isNaN(nums.get(9_999))).to.equal(true);
    nums.set(9_000, 1);
    nums.dropBelow(8_192);
    expect(Number.isNaN(nums.get(0))).to.equal(true);
    expect(nums.get(9_000)).to.equal(1);
  });
});

describe('probe flags: --canary and --workers', () => {
  const url = ['--url', 'http://127.0.0.1:8080'];

  it('--canary: its own defaults, and its flags', () => {
    const o = parseProbeArgs([...url, '--canary']);
    expect(o).to.include({ clients: 6, rooms: 3, rate: 2 });
    expect(o !== 'help' && o.canary).to.deep.equal({
      lossAfterS: 30,
      metricsPort: 9464,
      metricsHost: '0.0.0.0',
    });
    const p = parseProbeArgs([
      ...url,
      '--canary',
      '--loss-after',
      '5',
      '--metrics-port',
      '0',
      '--metrics-host',
      '127.0.0.1',
    ]);
    expect(p !== 'help' && p.canary).to.deep.equal({
      lossAfterS: 5,
      metricsPort: 0,
      metricsHost: '127.0.0.1',
    });
    expect(parseProbeArgs([...url, '--workers', '2'])).to.include({ workers: 2 });
    expect(parseProbeArgs([...url, '--canary', '--rate', '0.05']), 'one message every 20 s').to.include({
      rate: 0.05,
    });
  });

  const bad: [string[], RegExp][] = [
    [[...url, '--canary', '--duration', '10'], /^--duration: not with --canary/],
    [[...url, '--canary', '--settle', '10'], /^--settle: not with --canary/],
    [[...url, '--canary', '--workers', '2'], /^--workers: not with --canary/],
    [[...url, '--loss-after', '5'], /^--loss-after: only with --canary/],
    [[...url, '--metrics-port', '9000'], /^--metrics-port: only with --canary/],
    [[...url, '--canary', '--loss-after', '0'], /^--loss-after: expected a number > 0/],
    [
      [...url, '--canary', '--metrics-port', '70000'],
      /^--metrics-port: expected a whole number from 0 to 65535/,
    ],
    [[...url, '--canary', '--metrics-host', 'a b'], /^--metrics-host/],
    [[...url, '--workers', '0'], /^--workers: expected a whole number from 1/],
    [[...url, '--workers', '3', '--rooms', '2'], /^--workers: at most --rooms/],
  ];
  for (const [args, message] of bad) {
    it(`refuses ${JSON.stringify(args.slice(2))}`, () => {
      expect(() => parseProbeArgs(args))
        .to.throw(UsageError)
        .that.satisfies((e: Error) => message.test(e.message));
    });
  }
});
