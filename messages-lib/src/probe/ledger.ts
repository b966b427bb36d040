import { LatencyHistogram } from './histogram.js';
import type * as State from './ledger-state.js';
import { SettlingLedger } from './ledger-settling.js';
import { SlowestDeliveries } from './slowest-deliveries.js';

/**
 * What a probe run saw, checked as it happens: each send and its outcome, each delivery at each
 * client, each greeting of a server, and the rooms' stored history page by page. Nothing is kept
 * per delivery: per client the last seq, a bit per seq and per message of its room, and the
 * longest gap so far; per room a few numbers per message; latencies in a fixed histogram. So memory
 * grows with the messages sent, not with clients × messages. A message every member holds intact
 * is settled (`compact`): of it only its room, position, acked seq and a hash of its clientMsgId
 * stay (17 bytes, against about 80 while open), enough to check the stored history and to catch a
 * redelivery; a canary drops what it has judged altogether. Pure bookkeeping (no I/O, times passed
 * in): tests feed crafted streams.
 *
 * It is built in layers, one module each, all one object (the hot paths `send`, `ack` and
 * `deliver` read every column directly): `ledger-columns.ts` (clients, rooms, the per-message
 * columns, how a message is identified), `ledger-store-check.ts` (the stored history, during the
 * run and at its end), `ledger-settling.ts` (settling, sweeping, judging), and here the sends,
 * their answers and the deliveries, the mark and the counts. Their records are in
 * `ledger-state.ts`, the violations in `violations.ts`.
 */

// The message states of `ledger-state.ts`, as local constants (the compiler checks they agree):
// an imported binding is a load at every use, and `send`, `ack` and `deliver` use them for every
// message and delivery (measured: deliveries about 10 % slower when imported).
const UNSET: typeof State.UNSET = -1;
const PENDING: typeof State.PENDING = 0;
const ACKED: typeof State.ACKED = 1;
const FAILED: typeof State.FAILED = 2;
const SETTLED: typeof State.SETTLED = 3;

export { type LedgerOptions } from './ledger-columns.js';
export {
  type ClientState,
  type RoomHistory,
  type StoredMessage,
  type StoredSegment,
} from './ledger-state.js';
export { type Violation, type ViolationKind, ViolationLog } from './violations.js';

export class ProbeLedger extends SettlingLedger {
  readonly latency = new LatencyHistogram();
  readonly ackLatency = new LatencyHistogram();
  readonly slowest = new SlowestDeliveries();
  /** Latencies since the last `takeRecentLatency` (progress timelines). */
  private recent = new LatencyHistogram();
  private sentCount = 0;
  private pendingCount = 0;
  private ackedCount = 0;
  private failedCount = 0;
  private deliveredCount = 0;
  private expectedCount = 0;
  private coveredCount = 0;
  private duplicateCount = 0;
  private outOfOrderCount = 0;
  private windowFrom: number | undefined;
  private windowTo: number | undefined;
  /** `mark()`: when, and when the last message sent before it was acked and delivered to all. */
  private markAt: number | undefined;
  private markDoneAt = 0;

  /** Delivery gaps are measured from here (default: the first send) … */
  openWindow(at: number): void {
    if (this.windowFrom !== undefined) return;
    this.windowFrom = at;
    for (const c of this.clients) c.lastAt = at;
  }

  /** … to here; deliveries after it do not count toward gaps. */
  closeWindow(at: number): void {
    if (this.windowFrom === undefined || this.windowTo !== undefined) return;
    this.windowTo = at;
    for (const c of this.clients) c.longestGap = Math.max(c.longestGap, at - c.lastAt);
  }

  /** Per client, the longest stretch of the window without a delivery (the window closed at `to` if still open). */
  gaps(to: number): number[] {
    if (this.windowFrom === undefined) return this.clients.map(() => Math.max(0, to));
    if (this.windowTo !== undefined) return this.clients.map((c) => c.longestGap);
    return this.clients.map((c) => Math.max(c.longestGap, to - c.lastAt));
  }

  send(client: number, key: number, clientMsgId: string, at: number): void {
    if (this.keyState.get(key) !== UNSET || key < this.keyState.start) {
      throw new Error(`probe: message ${key} recorded twice`);
    }
    const c = this.client(client);
    const room = this.roomList[c.roomIndex]!;
    this.openWindow(at);
    const pos = room.keys.push(key);
    this.keyState.set(key, PENDING);
    this.keyRoom.set(key, c.roomIndex);
    this.keyPos.set(key, pos);
    this.keyClient.set(key, client);
    this.keySentAt.set(key, at);
    this.keyCmid.set(key, clientMsgId);
    this.sentCount++;
    this.pendingCount++;
  }

  ack(key: number, seq: number, at: number): void {
    if (this.keyState.get(key) !== PENDING) return;
    this.keyState.set(key, ACKED);
    this.keySeq.set(key, seq);
    this.keyAckAt.set(key, at);
    this.pendingCount--;
    this.ackedCount++;
    this.ackLatency.add(at - this.keySentAt.get(key));
    const room = this.roomList[this.keyRoom.get(key)]!;
    const pos = this.keyPos.get(key);
    if (pos < room.resolvedBelow) return; // judged already (a canary gave up on it as unacked)
    this.expectedCount += room.members.length;
    this.coveredCount += room.gotCount.get(pos) || 0;
    if ((room.gotCount.get(pos) || 0) >= room.members.length) this.done(key, at);
    const seq0 = room.seq0.get(pos);
    if (Number.isNaN(seq0)) {
      room.seq0.set(pos, seq);
      return;
    }
    if (seq0 === seq && this.odd.size === 0) return;
    // Delivered before the ack under another seq (faults only): each first delivery under a seq
    // other than the ack's is a seq mismatch.
    for (const ci of room.members) {
      const c = this.clients[ci]!;
      const odd = this.odd.get(`${ci}:${key}`);
      const firstSeq = odd?.first ? odd.seqs[0] : c.ok0.has(pos) ? seq0 : undefined;
      if (firstSeq !== undefined && firstSeq !== seq) this.seqMismatch(c, key, firstSeq, seq);
    }
  }

  fail(key: number, _error: string, at: number): void {
    if (this.keyState.get(key) !== PENDING) return;
    this.keyState.set(key, FAILED);
    this.keyAckAt.set(key, at);
    this.pendingCount--;
    this.failedCount++;
    this.done(key, at); // answered: the sender knows, and it is not expected anywhere
  }

  /**
   * Marks a moment (an operator's "the database is back"): the report then says how long after
   * it the last message sent before it was acked (or refused) and delivered to every member —
   * how long the backlog took to drain. A later mark replaces an earlier one.
   */
  mark(at: number): void {
    this.markAt = at;
    this.markDoneAt = at;
  }

  /** The latest mark, ms since `from`, and how long its backlog took (0: nothing was waiting). */
  markReport(from: number): { atMs: number; drainedMs: number } | undefined {
    if (this.markAt === undefined) return undefined;
    return {
      atMs: Math.round(this.markAt - from),
      drainedMs: Math.round(this.markDoneAt - this.markAt),
    };
  }

  /** Message `key` is acked (or refused) and every member has it. */
  private done(key: number, at: number): void {
    if (this.markAt !== undefined && this.keySentAt.get(key) <= this.markAt) {
      this.markDoneAt = Math.max(this.markDoneAt, at);
    }
  }

  deliver(
    client: number,
    m: { seq: number; clientMsgId: string; text?: string | undefined },
    at: number,
  ): void {
    const c = this.client(client);
    const room = this.roomList[c.roomIndex]!;
    if (this.windowFrom !== undefined && this.windowTo === undefined && at >= c.lastAt) {
      c.longestGap = Math.max(c.longestGap, at - c.lastAt);
      c.lastAt = at;
    }
    const named = this.keyOf(m.text);
    const ours = named !== undefined;
    // Every member held a checked message intact, and it is forgotten: any copy is one too many.
    const checkedCopy = ours && this.isChecked(named);
    const key = checkedCopy ? undefined : this.identify(room, c.roomIndex, named, m);
    const textOk = key !== undefined && key === named;
    if (ours || key !== undefined) this.deliveredCount++;
    const at0 = { room: c.room, user: c.user, clientMsgId: m.clientMsgId, seq: m.seq };
    if (c.prevSeq !== undefined && m.seq <= c.prevSeq) {
      this.outOfOrderCount++;
      this.violations.add({
        kind: 'out-of-order',
        ...at0,
        detail: `seq ${m.seq} delivered after seq ${c.prevSeq}`,
      });
    }
    c.prevSeq = m.seq;
    const seqBefore = c.seqs.set(m.seq);
    const pos = key === undefined ? undefined : this.keyPos.get(key);
    const judged = pos !== undefined && pos < room.resolvedBelow;
    // Every member held a settled message intact already: any copy of it is one too many.
    const settledBefore = checkedCopy || (key !== undefined && this.keyState.get(key) === SETTLED);
    const gotBefore = settledBefore || (pos !== undefined && !judged && c.got.set(pos));
    if (seqBefore || gotBefore) {
      this.duplicateCount++;
      this.violations.add({
        kind: 'duplicate',
        ...at0,
        detail: seqBefore
          ? `seq ${m.seq} delivered again`
          : `clientMsgId delivered again, now as seq ${m.seq}`,
      });
    }
    if (key === undefined || pos === undefined || judged) return;
    const acked = this.keyState.get(key) === ACKED;
    const ackSeq = this.keySeq.get(key);
    if (!gotBefore) {
      if (!seqBefore && acked && ackSeq !== m.seq) this.seqMismatch(c, key, m.seq, ackSeq);
      room.gotCount.add(pos, 1);
      if (acked) this.coveredCount++;
      if (acked && room.gotCount.get(pos) >= room.members.length) this.done(key, at);
    }
    if (!textOk) {
      this.violations.add({
        kind: 'content-mismatch',
        ...at0,
        detail: `delivered text ${JSON.stringify(m.text)}, sent ${JSON.stringify(this.textFor(key))}`,
      });
      return;
    }
    let seq0 = room.seq0.get(pos);
    if (Number.isNaN(seq0)) {
      seq0 = m.seq;
      room.seq0.set(pos, seq0);
    }
    if (m.seq === seq0) {
      if (!c.ok0.set(pos)) room.ok0Count.add(pos, 1);
    } else {
      const id = `${client}:${key}`;
      const odd = this.odd.get(id) ?? { seqs: [], first: !gotBefore };
      odd.seqs.push(m.seq);
      this.odd.set(id, odd);
    }
    if (!gotBefore && (!acked || ackSeq === m.seq)) {
      const sentAt = this.keySentAt.get(key);
      const ms = at - sentAt;
      this.latency.add(ms);
      this.recent.add(ms);
      this.slowest.add({
        ms: Math.round(ms),
        room: c.room,
        seq: m.seq,
        from: this.clients[this.keyClient.get(key)]!.user,
        to: c.user,
        ackMs: acked ? Math.round(this.keyAckAt.get(key) - sentAt) : undefined,
        sentAtMs: sentAt,
      });
    }
  }

  /** Latency percentiles since the previous call. */
  takeRecentLatency(): { p50: number; p99: number; max: number } {
    const p = this.recent.percentiles();
    this.recent = new LatencyHistogram();
    return p;
  }

  hello(client: number, _node: string, _at: number): void {
    this.client(client).hellos++;
  }

  clientError(client: number, error: string): void {
    this.client(client).lastError = error;
  }

  /** Every send answered, and every client holds every acked message of its room. */
  settled(): boolean {
    return this.pendingCount === 0 && this.coveredCount === this.expectedCount;
  }

  progress(): {
    sent: number;
    acked: number;
    failed: number;
    pending: number;
    delivered: number;
    reconnects: number;
    lost: number;
    duplicates: number;
    outOfOrder: number;
  } {
    return {
      sent: this.sentCount,
      acked: this.ackedCount,
      failed: this.failedCount,
      pending: this.pendingCount,
      delivered: this.deliveredCount,
      reconnects: this.reconnects(),
      lost: this.lostOnline,
      duplicates: this.duplicateCount,
      outOfOrder: this.outOfOrderCount,
    };
  }

  reconnects(): number {
    return this.clients.reduce((n, c) => n + Math.max(0, c.hellos - 1), 0);
  }

  /** Client-side counts so far (the end-of-run lost count is added by `judge`). */
  counts(): {
    expected: number;
    duplicates: number;
    outOfOrder: number;
    lostOnline: number;
    unackedOnline: number;
  } {
    return {
      expected: this.expectedCount,
      duplicates: this.duplicateCount,
      outOfOrder: this.outOfOrderCount,
      lostOnline: this.lostOnline,
      unackedOnline: this.unackedOnline,
    };
  }

  private seqMismatch(c: State.ClientState, key: number, delivered: number, acked: number): void {
    this.duplicateCount++;
    this.violations.add({
      kind: 'seq-mismatch',
      room: c.room,
      user: c.user,
      clientMsgId: this.keyCmid.get(key),
      seq: delivered,
      detail: `delivered as seq ${delivered}, acked as seq ${acked}`,
    });
  }
}
