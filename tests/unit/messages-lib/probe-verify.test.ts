import { expect } from 'chai';
import { ProbeLedger } from '../../../messages-lib/src/probe/ledger.js';
import { longestGap, percentiles } from '../../../messages-lib/src/probe/stats.js';
import { verify, type Verification } from '../../../messages-lib/src/probe/verify.js';

/**
 * The probe's verifier fed crafted event streams: every way a run can go wrong must show in the
 * counts and be named in the violations, and a clean stream must come out clean.
 */

const RUN = 'r1';

/** Two clients (a, b) in room `room-0`; a sends messages 0..n-1, acked as seqs 1..n. */
function scenario(n: number): { ledger: ProbeLedger; ids: string[] } {
  const ledger = new ProbeLedger(RUN, [
    { user: 'a', room: 'room-0' },
    { user: 'b', room: 'room-0' },
  ]);
  const ids: string[] = [];
  for (let k = 0; k < n; k++) {
    ids.push(`cmid-${k}`);
    ledger.send(0, k, `cmid-${k}`, 1_000 + k * 100);
    ledger.ack(k, k + 1, 1_010 + k * 100);
  }
  return { ledger, ids };
}

function deliverAll(ledger: ProbeLedger, client: number, keys: number[], seqOf = (k: number) => k + 1): void {
  for (const k of keys) {
    ledger.deliver(
      client,
      { seq: seqOf(k), clientMsgId: `cmid-${k}`, text: ledger.textFor(k) },
      1_020 + k * 100,
    );
  }
}

function storeAll(ledger: ProbeLedger, keys: number[]): void {
  ledger.storeHistory('room-0', {
    messages: keys.map((k) => ({ seq: k + 1, clientMsgId: `cmid-${k}`, text: ledger.textFor(k) })),
  });
}

function storeAllAt(ledger: ProbeLedger, keys: number[], readAt: number): void {
  ledger.storeHistory('room-0', {
    messages: keys.map((k) => ({ seq: k + 1, clientMsgId: `cmid-${k}`, text: ledger.textFor(k) })),
    readAt,
  });
}

function run(ledger: ProbeLedger): Verification {
  return verify(ledger, { from: 1_000, to: 1_000 + 10 * 100 });
}

const ALL = [0, 1, 2, 3, 4];

describe('probe verifier', () => {
  it('a clean run: every acked message delivered once, in order, stored once', () => {
    const { ledger } = scenario(5);
    deliverAll(ledger, 0, ALL);
    deliverAll(ledger, 1, ALL);
    storeAll(ledger, ALL);
    const v = run(ledger);
    expect(v).to.include({ sent: 5, acked: 5, failed: 0, unacked: 0, delivered: 10, expected: 10 });
    expect(v).to.include({ lost: 0, duplicates: 0, outOfOrder: 0, violationCount: 0 });
    expect(v.store).to.deep.equal({
      checked: true,
      messages: 5,
      lost: 0,
      duplicates: 0,
      checkedDuringRun: 0,
      errors: [],
    });
    expect(v.latencyMs).to.deep.equal({ p50: 20, p99: 20, max: 20 });
    expect(v.ackLatencyMs.max).to.equal(10);
  });

  it('an acked message a client never received is lost, and named', () => {
    const { ledger } = scenario(5);
    deliverAll(ledger, 0, ALL);
    deliverAll(ledger, 1, [0, 1, 3, 4]);
    storeAll(ledger, ALL);
    const v = run(ledger);
    expect(v.lost).to.equal(1);
    expect(v.duplicates).to.equal(0);
    expect(v.outOfOrder).to.equal(0);
    expect(v.violations).to.have.length(1);
    expect(v.violations[0]).to.include({ kind: 'lost', user: 'b', clientMsgId: 'cmid-2', seq: 3 });
  });

  it('a seq delivered twice to one client is a duplicate (and, coming back, out of order)', () => {
    const { ledger } = scenario(5);
    deliverAll(ledger, 0, ALL);
    deliverAll(ledger, 1, [0, 1, 2, 2, 3, 4]);
    storeAll(ledger, ALL);
    const v = run(ledger);
    expect(v.duplicates).to.equal(1);
    expect(v.outOfOrder).to.equal(1);
    expect(v.lost).to.equal(0);
    expect(v.violations.map((x) => x.kind)).to.have.members(['out-of-order', 'duplicate']);
    expect(v.violations.find((x) => x.kind === 'duplicate')).to.include({ user: 'b', seq: 3 });
  });

  it('a clientMsgId delivered under a second seq is a duplicate', () => {
    const { ledger } = scenario(3);
    deliverAll(ledger, 0, [0, 1, 2]);
    deliverAll(ledger, 1, [0, 1, 2]);
    ledger.deliver(1, { seq: 4, clientMsgId: 'cmid-1', text: ledger.textFor(1) }, 1_500);
    storeAll(ledger, [0, 1, 2]);
    const v = run(ledger);
    expect(v.duplicates).to.equal(1);
    expect(v.outOfOrder).to.equal(0);
    expect(v.violations[0]).to.include({ kind: 'duplicate', user: 'b', seq: 4, clientMsgId: 'cmid-1' });
  });

  it('a reordered seq is out of order, though nothing is lost', () => {
    const { ledger } = scenario(5);
    deliverAll(ledger, 0, ALL);
    deliverAll(ledger, 1, [0, 2, 1, 3, 4]);
    storeAll(ledger, ALL);
    const v = run(ledger);
    expect(v.outOfOrder).to.equal(1);
    expect(v.lost).to.equal(0);
    expect(v.duplicates).to.equal(0);
    expect(v.violations[0]).to.include({ kind: 'out-of-order', user: 'b', seq: 2 });
    expect(v.violations[0]!.detail).to.equal('seq 2 delivered after seq 3');
  });

  it('a message delivered under another seq than its ack is a duplicate, not a delivery', () => {
    const { ledger } = scenario(3);
    deliverAll(ledger, 0, [0, 1, 2]);
    deliverAll(ledger, 1, [0, 1, 2], (k) => (k === 2 ? 7 : k + 1));
    storeAll(ledger, [0, 1, 2]);
    const v = run(ledger);
    expect(v.duplicates).to.equal(1);
    expect(v.lost, 'the acked seq 3 never reached b').to.equal(1);
    expect(v.violations.map((x) => x.kind)).to.have.members(['seq-mismatch', 'lost']);
  });

  it('a delivery with the right ids but another text does not count as delivered', () => {
    const { ledger } = scenario(2);
    deliverAll(ledger, 0, [0, 1]);
    deliverAll(ledger, 1, [0]);
    ledger.deliver(1, { seq: 2, clientMsgId: 'cmid-1', text: 'garbled' }, 1_200);
    storeAll(ledger, [0, 1]);
    const v = run(ledger);
    expect(v.lost).to.equal(1);
    expect(v.violations.map((x) => x.kind)).to.have.members(['content-mismatch', 'lost']);
  });

  it('the store: a clientMsgId stored under two seqs is a duplicate', () => {
    const { ledger } = scenario(3);
    deliverAll(ledger, 0, [0, 1, 2]);
    deliverAll(ledger, 1, [0, 1, 2]);
    ledger.storeHistory('room-0', {
      messages: [
        { seq: 1, clientMsgId: 'cmid-0', text: ledger.textFor(0) },
        { seq: 2, clientMsgId: 'cmid-1', text: ledger.textFor(1) },
        { seq: 3, clientMsgId: 'cmid-2', text: ledger.textFor(2) },
        { seq: 4, clientMsgId: 'cmid-1', text: ledger.textFor(1) },
      ],
    });
    const v = run(ledger);
    expect(v.duplicates).to.equal(1);
    expect(v.store.duplicates).to.equal(1);
    expect(v.lost).to.equal(0);
    expect(v.violations[0]).to.include({ kind: 'stored-twice', clientMsgId: 'cmid-1' });
    expect(v.violations[0]!.detail).to.equal('one clientMsgId stored under seqs 2, 4');
  });

  it('the store: an acked message missing from the history is lost, even if every client saw it', () => {
    const { ledger } = scenario(3);
    deliverAll(ledger, 0, [0, 1, 2]);
    deliverAll(ledger, 1, [0, 1, 2]);
    storeAll(ledger, [0, 2]);
    const v = run(ledger);
    expect(v.lost).to.equal(1);
    expect(v.store.lost).to.equal(1);
    expect(v.violations[0]).to.include({ kind: 'not-stored', clientMsgId: 'cmid-1', seq: 2 });
  });

  it('the store: an ack that arrived after the history was read is not held against it', () => {
    const { ledger } = scenario(3); // acks at 1010, 1110, 1210
    deliverAll(ledger, 0, [0, 1, 2]);
    deliverAll(ledger, 1, [0, 1, 2]);
    ledger.storeHistory('room-0', {
      messages: [0, 1].map((k) => ({ seq: k + 1, clientMsgId: `cmid-${k}`, text: ledger.textFor(k) })),
      readAt: 1_150,
    });
    expect(run(ledger).store.lost).to.equal(0);
    // Read after the last ack: the same missing message is lost.
    storeAllAt(ledger, [0, 1], 1_300);
    expect(run(ledger).store.lost).to.equal(1);
  });

  it('the store: one seq twice, and a message stored under another seq than acked', () => {
    const { ledger } = scenario(2);
    deliverAll(ledger, 0, [0, 1]);
    deliverAll(ledger, 1, [0, 1]);
    ledger.storeHistory('room-0', {
      messages: [
        { seq: 1, clientMsgId: 'cmid-0', text: ledger.textFor(0) },
        { seq: 1, clientMsgId: 'other', text: 'someone else' },
        { seq: 5, clientMsgId: 'cmid-1', text: ledger.textFor(1) },
      ],
    });
    const v = run(ledger);
    expect(v.store.duplicates).to.equal(2);
    expect(v.violations.map((x) => x.kind)).to.have.members(['stored-twice', 'stored-under-other-seq']);
  });

  it('an unread history leaves the store unchecked', () => {
    const { ledger } = scenario(1);
    deliverAll(ledger, 0, [0]);
    deliverAll(ledger, 1, [0]);
    ledger.storeHistory('room-0', { error: 'TIMEOUT: no reply' });
    const v = run(ledger);
    expect(v.store.checked).to.equal(false);
    expect(v.store.errors).to.deep.equal(['room-0: TIMEOUT: no reply']);
  });

  it('refused and unanswered sends are failed and unacked, never expected', () => {
    const { ledger } = scenario(2);
    ledger.send(1, 10, 'cmid-10', 2_000);
    ledger.fail(10, 'RECIPIENT_FAILURE 400: text', 2_010);
    ledger.send(1, 11, 'cmid-11', 2_100);
    deliverAll(ledger, 0, [0, 1]);
    deliverAll(ledger, 1, [0, 1]);
    storeAll(ledger, [0, 1]);
    const v = run(ledger);
    expect(v).to.include({ sent: 4, acked: 2, failed: 1, unacked: 1, expected: 4, lost: 0 });
  });

  it('messages of other runs are checked for order but not counted as delivered', () => {
    const { ledger } = scenario(2);
    ledger.deliver(1, { seq: 1, clientMsgId: 'cmid-0', text: ledger.textFor(0) }, 1_020);
    ledger.deliver(1, { seq: 2, clientMsgId: 'cmid-1', text: ledger.textFor(1) }, 1_120);
    ledger.deliver(1, { seq: 2, clientMsgId: 'foreign', text: 'probe:other-run:1' }, 1_130);
    deliverAll(ledger, 0, [0, 1]);
    storeAll(ledger, [0, 1]);
    const v = run(ledger);
    expect(v.delivered).to.equal(4);
    expect(v.outOfOrder).to.equal(1);
    expect(v.duplicates).to.equal(1);
  });

  it('settles only once every send is answered and every client holds every acked message', () => {
    const ledger = new ProbeLedger(RUN, [
      { user: 'a', room: 'room-0' },
      { user: 'b', room: 'room-0' },
      { user: 'c', room: 'room-1' },
    ]);
    ledger.send(0, 0, 'x', 0);
    expect(ledger.settled()).to.equal(false);
    // Delivered before the sender's ack came: common, as the server publishes before it replies.
    ledger.deliver(1, { seq: 1, clientMsgId: 'x', text: ledger.textFor(0) }, 5);
    ledger.ack(0, 1, 6);
    expect(ledger.settled(), 'a has not received it').to.equal(false);
    ledger.deliver(0, { seq: 1, clientMsgId: 'x', text: ledger.textFor(0) }, 7);
    expect(ledger.settled()).to.equal(true);
  });

  it('delivery gaps are measured over the sending window, reconnections counted from hellos', () => {
    const { ledger } = scenario(5);
    deliverAll(ledger, 0, ALL); // at 1020, 1120, … 1420; the window ends at 2000
    for (const k of ALL) {
      const at = k < 2 ? 1_020 + k * 100 : 1_700 + k * 10;
      ledger.deliver(1, { seq: k + 1, clientMsgId: `cmid-${k}`, text: ledger.textFor(k) }, at);
    }
    ledger.hello(1, 'n0', 0);
    ledger.hello(1, 'n1', 1_300);
    ledger.hello(0, 'n0', 0);
    storeAll(ledger, ALL);
    const v = run(ledger);
    expect(v.maxDeliveryGapMs).to.equal(1_720 - 1_120);
    expect(v.p99DeliveryGapMs).to.equal(600);
    expect(v.reconnects).to.equal(1);
    expect(v.latencyMs.max, 'message 2: sent at 1200, at b at 1720').to.equal(520);
  });

  it('percentiles are nearest-rank; a window without deliveries is one long gap', () => {
    const samples = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentiles(samples)).to.deep.equal({ p50: 50, p99: 99, max: 100 });
    expect(percentiles([])).to.deep.equal({ p50: 0, p99: 0, max: 0 });
    expect(longestGap([], 0, 500)).to.equal(500);
    expect(longestGap([100, 50, 450, 900], 0, 500)).to.equal(350);
  });

  it('a mark: how long the messages sent before it took to be acked and reach every member', () => {
    const ledger = new ProbeLedger(RUN, [
      { user: 'a', room: 'room-0' },
      { user: 'b', room: 'room-0' },
    ]);
    expect(ledger.markReport(0), 'no mark').to.equal(undefined);
    const text = (k: number) => ({ seq: k + 1, clientMsgId: `cmid-${k}`, text: ledger.textFor(k) });
    // 0: done before the mark. 1: acked before, reaches b after. 2: delivered before, acked after.
    // 3: refused after. 4: sent after the mark (not part of its backlog).
    for (let k = 0; k < 4; k++) ledger.send(0, k, `cmid-${k}`, 100 + k);
    ledger.ack(0, 1, 110);
    ledger.deliver(0, text(0), 111);
    ledger.deliver(1, text(0), 112);
    ledger.ack(1, 2, 120);
    ledger.deliver(0, text(1), 121);
    ledger.deliver(0, text(2), 122);
    ledger.deliver(1, text(2), 123);
    ledger.mark(1_000);
    expect(ledger.markReport(0), 'nothing done since the mark').to.deep.equal({ atMs: 1_000, drainedMs: 0 });
    ledger.deliver(1, text(1), 1_300);
    ledger.ack(2, 3, 1_500);
    ledger.fail(3, 'refused', 1_700);
    ledger.send(0, 4, 'cmid-4', 1_800);
    ledger.ack(4, 4, 2_500);
    ledger.deliver(0, { seq: 4, clientMsgId: 'cmid-4', text: ledger.textFor(4) }, 2_600);
    ledger.deliver(1, { seq: 4, clientMsgId: 'cmid-4', text: ledger.textFor(4) }, 2_700);
    expect(ledger.markReport(0)).to.deep.equal({ atMs: 1_000, drainedMs: 700 });
    expect(ledger.markReport(400), 'relative to the start of sending').to.deep.equal({
      atMs: 600,
      drainedMs: 700,
    });
  });
});
