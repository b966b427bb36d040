import { ChunkedBits, ChunkedNumbers, ClientMsgIdColumn } from './chunked.js';
import { LatencyHistogram } from './histogram.js';

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
 */

export type ViolationKind =
  | 'lost' // an acked message a client never received
  | 'duplicate' // a seq or clientMsgId delivered twice to one client
  | 'seq-mismatch' // delivered under another seq than its ack said
  | 'content-mismatch' // delivered under the acked clientMsgId but with another text
  | 'out-of-order' // a delivered seq ≤ the one delivered before it
  | 'not-stored' // acked, but the room's history does not hold it
  | 'stored-twice' // one clientMsgId (or one seq) stored more than once
  | 'stored-under-other-seq'; // stored once, but not under the seq of its ack

export interface Violation {
  kind: ViolationKind;
  room: string;
  /** The client that saw it (client-side checks). */
  user?: string;
  clientMsgId?: string;
  seq?: number;
  detail: string;
}

/** A stored message as `chat.history` returns it. */
export interface StoredMessage {
  seq: number;
  clientMsgId: string;
  text?: string | undefined;
}

/**
 * A room's stored history as read at `readAt` (same clock as the acks): an ack that arrived after
 * the read began may be missing from it without anything being lost, so the store check skips it.
 */
export type RoomHistory = { messages: StoredMessage[]; readAt?: number } | { error: string };

const PER_KIND = 5;
/** How far back (messages of the room) a delivery whose text does not name it is searched for. */
const SEARCH_LIMIT = 100_000;
const MAX_VIOLATIONS = 20;

/** Counts every violation, keeps the first few of each kind. */
export class ViolationLog {
  count = 0;
  readonly sample: Violation[] = [];
  private readonly perKind = new Map<ViolationKind, number>();

  constructor(private readonly onViolation?: (v: Violation) => void) {}

  add(v: Violation): void {
    this.count++;
    this.onViolation?.(v);
    const n = this.perKind.get(v.kind) ?? 0;
    if (n >= PER_KIND || this.sample.length >= MAX_VIOLATIONS) return;
    this.perKind.set(v.kind, n + 1);
    this.sample.push(v);
  }

  clone(): ViolationLog {
    const copy = new ViolationLog();
    copy.count = this.count;
    copy.sample.push(...this.sample);
    for (const [k, n] of this.perKind) copy.perKind.set(k, n);
    return copy;
  }
}

const UNSET = -1;
const PENDING = 0;
const ACKED = 1;
const FAILED = 2;
/** Acked, held intact by every member, and compacted: see `compact`. */
const SETTLED = 3;
/** Settled, then found once in the stored history under its acked seq, and forgotten: see `checkStoredSegment`. */
const CHECKED = 4;

export interface ClientState {
  readonly index: number;
  readonly user: string;
  readonly room: string;
  readonly roomIndex: number;
  /** Seqs delivered (any message). */
  readonly seqs: ChunkedBits;
  /** Room positions (this run's messages) delivered at least once, under any seq. */
  readonly got: ChunkedBits;
  /** Room positions delivered under the room's first-seen seq for them, with their text. */
  readonly ok0: ChunkedBits;
  prevSeq: number | undefined;
  hellos: number;
  /** Within the sending window: the last delivery and the longest stretch without one. */
  lastAt: number;
  longestGap: number;
  lastError?: string;
}

/** Per room, per message of this run sent to it (its position), in send order. */
interface RoomState {
  readonly name: string;
  readonly members: number[];
  /** position → message key */
  readonly keys: ChunkedNumbers;
  /** position → the seq it was first seen under (first delivery, or its ack if that came first). */
  readonly seq0: ChunkedNumbers;
  /** position → clients that got it at all; → clients that got it under seq0 with its text. */
  readonly gotCount: ChunkedNumbers;
  readonly ok0Count: ChunkedNumbers;
  /** Positions below this are judged (canary) or settled (run), and their chunks dropped. */
  resolvedBelow: number;
  /** Settled positions (run): the acked seq, and a hash of the clientMsgId (-1: not settled). */
  readonly settledSeq: ChunkedNumbers;
  readonly settledCmid: ChunkedNumbers;
  /** Settled positions below this were found in the stored history during the run, and forgotten. */
  checkedBelow: number;
  /** The stored history up to this seq has been read (during the run); the rest is read after it. */
  storeCursor?: number;
  store?: StoreState;
}

/** A store check of part of a room's history during the run: see `beginStoredSegment`. */
export interface StoredSegment {
  readonly room: string;
  /** Positions settled when it began: only they may be judged by it. */
  readonly settledBelow: number;
  /** The highest acked seq among them: the segment reads the history up to here. */
  readonly upTo: number;
}

interface StoreState {
  readAt?: number;
  error?: string;
  messages: number;
  duplicates: number;
  /** Settled messages not found in the segments read during the run. */
  lost: number;
  readonly seqs: ChunkedBits;
  /** position → the seq it is stored under (NaN: not found yet). */
  readonly storedSeq: ChunkedNumbers;
  /** position → its clientMsgId and every seq, once a message of this run is found under a second one (rare). */
  readonly multi: Map<number, { clientMsgId: string; seqs: number[] }>;
  /** Messages of other runs: clientMsgId → seqs. */
  readonly foreign: Map<string, number[]>;
  readonly violations: ViolationLog;
}

/** A client's deliveries of one message under a seq other than the room's seq0 (faults only). */
interface Odd {
  seqs: number[];
  /** The first delivery of the message to this client was one of these. */
  first: boolean;
}

export interface LedgerOptions {
  /** Called on every violation as it is found (the canary logs them). */
  onViolation?: (v: Violation) => void;
}

export class ProbeLedger {
  readonly clients: ClientState[];
  readonly latency = new LatencyHistogram();
  readonly ackLatency = new LatencyHistogram();
  /** Latencies since the last `takeRecentLatency` (progress timelines). */
  private recent = new LatencyHistogram();
  readonly violations: ViolationLog;
  private readonly roomList: RoomState[] = [];
  private readonly roomByName = new Map<string, RoomState>();
  // Per message key (run-wide message number):
  private readonly keyState = new ChunkedNumbers(Int8Array, UNSET);
  private readonly keyRoom = new ChunkedNumbers(Int32Array, -1);
  private readonly keyPos = new ChunkedNumbers(Int32Array, -1);
  private readonly keyClient = new ChunkedNumbers(Int32Array, -1);
  private readonly keySentAt = new ChunkedNumbers();
  private readonly keyAckAt = new ChunkedNumbers();
  private readonly keySeq = new ChunkedNumbers();
  private readonly keyCmid = new ClientMsgIdColumn();
  private readonly odd = new Map<string, Odd>();
  private readonly textPrefix: string;
  private sentCount = 0;
  private pendingCount = 0;
  private ackedCount = 0;
  private failedCount = 0;
  private deliveredCount = 0;
  private expectedCount = 0;
  private coveredCount = 0;
  private duplicateCount = 0;
  private outOfOrderCount = 0;
  private lostOnline = 0;
  private unackedOnline = 0;
  /** Every key below this was checked in the store during the run (its identity may be gone). */
  private checkedKeysBelow = 0;
  private checkedCount = 0;
  private windowFrom: number | undefined;
  private windowTo: number | undefined;
  /** `mark()`: when, and when the last message sent before it was acked and delivered to all. */
  private markAt: number | undefined;
  private markDoneAt = 0;

  constructor(
    readonly runId: string,
    clients: { user: string; room: string }[],
    options: LedgerOptions = {},
  ) {
    this.violations = new ViolationLog(options.onViolation);
    this.textPrefix = `probe:${runId}:`;
    this.clients = clients.map((c, index) => {
      let room = this.roomByName.get(c.room);
      if (!room) {
        room = {
          name: c.room,
          members: [],
          keys: new ChunkedNumbers(Int32Array, -1),
          seq0: new ChunkedNumbers(),
          gotCount: new ChunkedNumbers(Int32Array, 0),
          ok0Count: new ChunkedNumbers(Int32Array, 0),
          resolvedBelow: 0,
          settledSeq: new ChunkedNumbers(Int32Array, -1),
          settledCmid: new ChunkedNumbers(Int32Array, 0),
          checkedBelow: 0,
        };
        this.roomByName.set(c.room, room);
        this.roomList.push(room);
      }
      room.members.push(index);
      return {
        index,
        user: c.user,
        room: c.room,
        roomIndex: this.roomList.indexOf(room),
        seqs: new ChunkedBits(),
        got: new ChunkedBits(),
        ok0: new ChunkedBits(),
        prevSeq: undefined,
        hellos: 0,
        lastAt: 0,
        longestGap: 0,
      };
    });
  }

  get rooms(): string[] {
    return this.roomList.map((r) => r.name);
  }

  /** The text of message `key`: it names the run, so deliveries of other runs are told apart. */
  textFor(key: number): string {
    return `${this.textPrefix}${key}`;
  }

  /** The message number a text of this run carries, or undefined. */
  keyOf(text: string | undefined): number | undefined {
    if (text === undefined || !text.startsWith(this.textPrefix)) return undefined;
    const rest = text.slice(this.textPrefix.length);
    if (!/^\d+$/.test(rest)) return undefined;
    return Number(rest);
  }

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
      const ms = at - this.keySentAt.get(key);
      this.latency.add(ms);
      this.recent.add(ms);
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

  /**
   * The rest of a whole history at once (tests; the run feeds it page by page): what follows the
   * segments checked during the run (`storeCursor`), or all of it.
   */
  storeHistory(room: string, history: RoomHistory): void {
    if ('error' in history) {
      this.historyError(room, history.error);
      return;
    }
    this.beginHistory(room, history.readAt);
    this.historyPage(room, history.messages);
  }

  /** The final read of a room's history begins; it goes on from `storeCursor`, if set. */
  beginHistory(room: string, readAt?: number): void {
    const r = this.room(room);
    r.store ??= emptyStore();
    if (readAt !== undefined) r.store.readAt = readAt;
  }

  historyError(room: string, error: string): void {
    const r = this.room(room);
    r.store ??= emptyStore();
    r.store.error = error;
  }

  /** The seq after which the final history read starts: the end of the segments checked so far. */
  storeCursor(room: string): number | undefined {
    return this.room(room).storeCursor;
  }

  /** Settled messages of `room` not yet checked against the stored history. */
  uncheckedSettled(room: string): number {
    const r = this.room(room);
    return r.resolvedBelow - r.checkedBelow;
  }

  /**
   * Begins a store check during the run of `room`'s settled messages: the caller reads the stored
   * history after `storeCursor` up to `upTo`, page by page, into `checkStoredSegment`. Settled
   * messages were acked (so stored) before it began, and seqs are stored in order within a room, so
   * whatever history holds up to `upTo` when read is final. Undefined when nothing is to check.
   */
  beginStoredSegment(room: string): StoredSegment | undefined {
    const r = this.room(room);
    let upTo = -1;
    for (let pos = r.checkedBelow; pos < r.resolvedBelow; pos++) upTo = Math.max(upTo, r.settledSeq.get(pos));
    if (upTo < 0 || (r.storeCursor !== undefined && upTo <= r.storeCursor)) return undefined;
    return { room, settledBelow: r.resolvedBelow, upTo };
  }

  /**
   * One page of a segment's history, read after `storeCursor` (`full`: it held as many messages as
   * asked for, so more may follow). Checks its messages up to the segment's end like the final read,
   * moves the cursor, then judges the settled messages at or below the cursor and forgets them: a
   * run's memory then stays flat however long it runs. Returns the new cursor.
   */
  checkStoredSegment(seg: StoredSegment, messages: readonly StoredMessage[], full: boolean): number {
    const r = this.room(seg.room);
    const s = (r.store ??= emptyStore());
    const from = r.storeCursor ?? -Infinity;
    const last = messages.at(-1)?.seq;
    const to = full && last !== undefined && last < seg.upTo ? last : seg.upTo;
    if (to <= from) return from;
    this.historyPage(
      seg.room,
      messages.filter((m) => m.seq > from && m.seq <= to),
    );
    r.storeCursor = to;
    let pos = r.checkedBelow;
    for (; pos < seg.settledBelow; pos++) {
      // Not found (yet): it may be stored under a later seq; the final check judges it, as it would.
      if (r.settledSeq.get(pos) > to || Number.isNaN(s.storedSeq.get(pos))) break;
      if (this.checkSettled(r, s, pos, s.violations) === 'stored-under-other-seq') s.duplicates++;
      this.keyState.set(r.keys.get(pos), CHECKED);
      this.checkedCount++;
    }
    if (pos > r.checkedBelow) this.forgetChecked(r, s, pos);
    return to;
  }

  /** Checks one page of a room's stored history as it arrives (nothing of it is kept). */
  historyPage(room: string, messages: readonly StoredMessage[]): void {
    const r = this.room(room);
    const s = r.store;
    if (!s) throw new Error(`probe: history of ${room} not begun`);
    const roomIndex = this.roomList.indexOf(r);
    for (const m of messages) {
      const named = this.keyOf(m.text);
      const ours = named !== undefined;
      if (ours && this.isChecked(named)) {
        s.messages++;
        s.duplicates++;
        s.seqs.set(m.seq);
        s.violations.add({
          kind: 'stored-twice',
          room,
          seq: m.seq,
          clientMsgId: m.clientMsgId,
          detail: `stored again as seq ${m.seq}, after the store check had found it once`,
        });
        continue;
      }
      const key = this.identify(r, roomIndex, named, m);
      if (ours || key !== undefined) s.messages++;
      if (s.seqs.set(m.seq)) {
        s.duplicates++;
        s.violations.add({
          kind: 'stored-twice',
          room,
          seq: m.seq,
          clientMsgId: m.clientMsgId,
          detail: `seq ${m.seq} is in the history twice`,
        });
      }
      if (key === undefined) {
        const list = s.foreign.get(m.clientMsgId) ?? [];
        list.push(m.seq);
        s.foreign.set(m.clientMsgId, list);
        continue;
      }
      const pos = this.keyPos.get(key);
      const before = s.storedSeq.get(pos);
      if (Number.isNaN(before)) {
        s.storedSeq.set(pos, m.seq);
      } else {
        const entry = s.multi.get(pos) ?? { clientMsgId: m.clientMsgId, seqs: [before] };
        entry.seqs.push(m.seq);
        s.multi.set(pos, entry);
      }
    }
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

  /**
   * The end of a run: every acked message not yet judged that some client does not hold intact
   * (delivered under its acked seq with its text) is lost. Logs into `log`, changes nothing.
   */
  judgeRest(log: ViolationLog): number {
    let lost = 0;
    for (const room of this.roomList) {
      for (let pos = room.resolvedBelow; pos < room.keys.length; pos++) {
        lost += this.judge(room, pos, log);
      }
    }
    return lost;
  }

  /**
   * Canary: judges every message acked (or sent, if never acked) more than `afterMs` before `now`,
   * counts what some member does not hold as lost, and forgets it. Returns the newly lost.
   */
  sweep(now: number, afterMs: number): number {
    let lost = 0;
    for (const room of this.roomList) {
      let pos = room.resolvedBelow;
      for (; pos < room.keys.length; pos++) {
        const key = room.keys.get(pos);
        const state = this.keyState.get(key);
        const since = state === PENDING ? this.keySentAt.get(key) : this.keyAckAt.get(key);
        if (now - since < afterMs) break;
        if (state === PENDING) this.unackedOnline++;
        else lost += this.judge(room, pos, this.violations);
      }
      if (pos > room.resolvedBelow) this.forget(room, pos);
    }
    this.lostOnline += lost;
    return lost;
  }

  /** How much the ledger holds, for tests of the canary's bounded memory. */
  held(): {
    keys: number;
    odd: number;
    clientChunks: number;
    otherIds: number;
    identities: number;
    settled: number;
  } {
    const starts = this.roomList.map((r) =>
      r.resolvedBelow < r.keys.length ? r.keys.get(r.resolvedBelow) : Infinity,
    );
    const oldest = Math.min(...starts, this.keyState.length);
    return {
      keys:
        this.keySentAt.length -
        Math.max(this.keySentAt.start, Number.isFinite(oldest) ? Math.min(oldest, this.keySentAt.length) : 0),
      odd: this.odd.size,
      clientChunks: this.clients.reduce(
        (n, c) => n + c.seqs.chunkCount + c.got.chunkCount + c.ok0.chunkCount,
        0,
      ),
      otherIds: this.keyCmid.otherCount,
      identities: this.keyState.length - this.keyState.start,
      settled: this.roomList.reduce((n, r) => n + r.resolvedBelow - r.checkedBelow, 0),
    };
  }

  /**
   * A run's steady memory: settles, room by room in send order, every message acked and held by
   * every member under its acked seq with its text (what `judgeRest` would pass), keeping of it
   * only what the store check and the duplicate check need. Stops at a room's first message that
   * is not (yet) so. Called while sending and settling, never during the history read: the store
   * check counts on settled messages having been acked before it began.
   */
  compact(): number {
    let settled = 0;
    for (const room of this.roomList) {
      let pos = room.resolvedBelow;
      for (; pos < room.keys.length; pos++) {
        const key = room.keys.get(pos);
        if (this.keyState.get(key) !== ACKED) break;
        const ackSeq = this.keySeq.get(key);
        if (!(ackSeq >= 0 && ackSeq <= 0x7fffffff)) break;
        if (room.seq0.get(pos) !== ackSeq || room.ok0Count.get(pos) !== room.members.length) break;
        if (this.odd.size > 0 && room.members.some((ci) => this.odd.has(`${ci}:${key}`))) break;
        room.settledSeq.set(pos, ackSeq);
        room.settledCmid.set(pos, cmidHash(this.keyCmid.get(key)));
        this.keyState.set(key, SETTLED);
      }
      if (pos > room.resolvedBelow) {
        settled += pos - room.resolvedBelow;
        this.forget(room, pos, true);
      }
    }
    return settled;
  }

  /** The store check over every room, violations into `log`. */
  checkStore(log: ViolationLog): {
    checked: boolean;
    messages: number;
    lost: number;
    duplicates: number;
    checkedDuringRun: number;
    errors: string[];
  } {
    const out = {
      checked: true,
      messages: 0,
      lost: 0,
      duplicates: 0,
      checkedDuringRun: this.checkedCount,
      errors: [] as string[],
    };
    for (const room of this.roomList) {
      const s = room.store;
      if (!s || s.error !== undefined) {
        out.checked = false;
        out.errors.push(`${room.name}: ${s?.error ?? 'history not read'}`);
        continue;
      }
      out.messages += s.messages;
      out.duplicates += s.duplicates;
      out.lost += s.lost;
      for (const v of s.violations.sample) log.add(v);
      log.count += s.violations.count - s.violations.sample.length;
      for (const [cmid, list] of s.foreign) {
        if (list.length > 1) out.duplicates += storedTwice(room.name, cmid, list, log);
      }
      for (const { clientMsgId, seqs } of s.multi.values()) {
        out.duplicates += storedTwice(room.name, clientMsgId, seqs, log);
      }
      // Settled messages: acked before the history was read (settling stops before it).
      for (let pos = room.checkedBelow; pos < room.resolvedBelow; pos++) {
        const judged = this.checkSettled(room, s, pos, log);
        if (judged === 'not-stored') out.lost++;
        else if (judged === 'stored-under-other-seq') out.duplicates++;
      }
      for (let pos = room.resolvedBelow; pos < room.keys.length; pos++) {
        const key = room.keys.get(pos);
        if (this.keyState.get(key) !== ACKED) continue;
        if (s.readAt !== undefined && this.keyAckAt.get(key) > s.readAt) continue;
        const stored = s.storedSeq.get(pos);
        const ackSeq = this.keySeq.get(key);
        const at = { room: room.name, clientMsgId: this.keyCmid.get(key), seq: ackSeq };
        if (Number.isNaN(stored)) {
          out.lost++;
          log.add({ kind: 'not-stored', ...at, detail: `acked as seq ${ackSeq}, not in the history` });
        } else if (!s.multi.has(pos) && stored !== ackSeq) {
          out.duplicates++;
          log.add({
            kind: 'stored-under-other-seq',
            ...at,
            detail: `acked as seq ${ackSeq}, stored as seq ${stored}`,
          });
        }
      }
    }
    return out;
  }

  /**
   * Judges settled position `pos` against what the history held for it, logging into `log` the
   * violation it returns (undefined: stored once, under its acked seq).
   */
  private checkSettled(
    room: RoomState,
    s: StoreState,
    pos: number,
    log: ViolationLog,
  ): 'not-stored' | 'stored-under-other-seq' | undefined {
    const ackSeq = room.settledSeq.get(pos);
    if (ackSeq < 0) return undefined; // judged by a canary, not settled
    const stored = s.storedSeq.get(pos);
    const at = { room: room.name, seq: ackSeq };
    if (Number.isNaN(stored)) {
      log.add({
        kind: 'not-stored',
        ...at,
        detail: `acked as seq ${ackSeq} (the room's message ${pos} of this run), not in the history`,
      });
      return 'not-stored';
    }
    if (!s.multi.has(pos) && stored !== ackSeq) {
      log.add({
        kind: 'stored-under-other-seq',
        ...at,
        detail: `acked as seq ${ackSeq}, stored as seq ${stored} (the room's message ${pos} of this run)`,
      });
      return 'stored-under-other-seq';
    }
    return undefined;
  }

  /** Whether `key` is a message of this run that was checked in the store during the run and forgotten. */
  private isChecked(key: number): boolean {
    return key < this.checkedKeysBelow || this.keyState.get(key) === CHECKED;
  }

  /**
   * Forgets a room's positions below `pos`, checked in the store during the run: their settled
   * numbers, what the history read held for them, their keys' identity once no room needs it.
   */
  private forgetChecked(room: RoomState, s: StoreState, pos: number): void {
    for (const [p, { clientMsgId, seqs }] of s.multi) {
      if (p >= pos) continue;
      s.duplicates += storedTwice(room.name, clientMsgId, seqs, s.violations);
      s.multi.delete(p);
    }
    for (const [cmid, seqs] of s.foreign) {
      if (seqs.length > 1) s.duplicates += storedTwice(room.name, cmid, seqs, s.violations);
    }
    s.foreign.clear();
    room.checkedBelow = pos;
    for (const col of [room.settledSeq, room.settledCmid, room.keys, s.storedSeq]) col.dropBelow(pos);
    // Stored seqs and deliveries at or below the cursor are not looked at again (a late copy is
    // still out of order, and a stored copy of a checked message is found by its text).
    const floor = (room.storeCursor ?? 0) - 4_096;
    s.seqs.dropBelow(floor);
    for (const ci of room.members) this.clients[ci]!.seqs.dropBelow(floor);
    let oldest = Infinity;
    for (const r of this.roomList) {
      if (r.checkedBelow < r.keys.length) oldest = Math.min(oldest, r.keys.get(r.checkedBelow));
    }
    if (!Number.isFinite(oldest)) oldest = this.keyState.length;
    this.checkedKeysBelow = oldest;
    for (const col of [this.keyState, this.keyRoom, this.keyPos]) col.dropBelow(oldest);
  }

  /**
   * The key of the message of this run in `room` that `m` is, or undefined. Usually its text names
   * it and the clientMsgId confirms; otherwise (a garbled text) the room's recent messages are
   * searched by clientMsgId. Texts of other probe runs are not searched for.
   */
  private identify(
    room: RoomState,
    roomIndex: number,
    named: number | undefined,
    m: { clientMsgId: string; text?: string | undefined },
  ): number | undefined {
    if (named !== undefined && this.keyRoom.get(named) === roomIndex) {
      if (this.keyState.get(named) === SETTLED) {
        const pos = this.keyPos.get(named);
        if (room.settledCmid.get(pos) === cmidHash(m.clientMsgId)) return named;
      } else if (this.keyCmid.matches(named, m.clientMsgId)) {
        return named;
      }
    }
    if (named === undefined && m.text?.startsWith('probe:')) return undefined;
    const from = Math.max(room.resolvedBelow, room.keys.start, room.keys.length - SEARCH_LIMIT);
    for (let pos = room.keys.length - 1; pos >= from; pos--) {
      const key = room.keys.get(pos);
      if (this.keyCmid.matches(key, m.clientMsgId)) return key;
    }
    return undefined;
  }

  private judge(room: RoomState, pos: number, log: ViolationLog): number {
    const key = room.keys.get(pos);
    if (this.keyState.get(key) !== ACKED) return 0;
    const ackSeq = this.keySeq.get(key);
    const allOk0 = room.seq0.get(pos) === ackSeq && room.ok0Count.get(pos) === room.members.length;
    if (allOk0) return 0;
    let lost = 0;
    for (const ci of room.members) {
      if (this.intact(ci, room, pos, key, ackSeq)) continue;
      lost++;
      log.add({
        kind: 'lost',
        room: room.name,
        user: this.clients[ci]!.user,
        clientMsgId: this.keyCmid.get(key),
        seq: ackSeq,
        detail: `acked as seq ${ackSeq} (sent by ${this.clients[this.keyClient.get(key)]!.user}), never delivered intact`,
      });
    }
    return lost;
  }

  private intact(ci: number, room: RoomState, pos: number, key: number, ackSeq: number): boolean {
    if (room.seq0.get(pos) === ackSeq && this.clients[ci]!.ok0.has(pos)) return true;
    return this.odd.get(`${ci}:${key}`)?.seqs.includes(ackSeq) ?? false;
  }

  private seqMismatch(c: ClientState, key: number, delivered: number, acked: number): void {
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

  /**
   * Drops what is judged: positions below `pos` of `room`, and what only they needed. Settled
   * messages (`keepIdentity`) keep their state, room and position, so the store check and a late
   * copy still find them, and every client keeps every seq it saw (a bit each).
   */
  private forget(room: RoomState, pos: number, keepIdentity = false): void {
    for (let p = room.resolvedBelow; p < pos; p++) {
      const key = room.keys.get(p);
      if (this.odd.size > 0) for (const ci of room.members) this.odd.delete(`${ci}:${key}`);
    }
    // Seqs well below the judged ones are not looked at again (a redelivery is still out of order).
    const seqFloor = room.seq0.get(pos - 1);
    room.resolvedBelow = pos;
    room.keys.dropBelow(keepIdentity ? room.checkedBelow : pos); // a store check during the run reads them
    for (const col of [room.seq0, room.gotCount, room.ok0Count]) col.dropBelow(pos);
    for (const ci of room.members) {
      const c = this.clients[ci]!;
      c.got.dropBelow(pos);
      c.ok0.dropBelow(pos);
      if (!keepIdentity && !Number.isNaN(seqFloor)) c.seqs.dropBelow(seqFloor - 4_096);
    }
    let oldest = Infinity;
    for (const r of this.roomList)
      if (r.resolvedBelow < r.keys.length) oldest = Math.min(oldest, r.keys.get(r.resolvedBelow));
    if (!Number.isFinite(oldest)) oldest = this.keyState.length;
    const identity = keepIdentity ? [] : [this.keyState, this.keyRoom, this.keyPos];
    for (const col of [...identity, this.keyClient, this.keySentAt, this.keyAckAt, this.keySeq]) {
      col.dropBelow(oldest);
    }
    this.keyCmid.dropBelow(oldest);
  }

  private room(name: string): RoomState {
    const r = this.roomByName.get(name);
    if (!r) throw new Error(`probe: no room ${name}`);
    return r;
  }

  private client(index: number): ClientState {
    const c = this.clients[index];
    if (!c) throw new Error(`probe: no client ${index}`);
    return c;
  }
}

/** Logs one clientMsgId stored under several seqs; returns the extra copies (duplicates). */
function storedTwice(room: string, clientMsgId: string, seqs: number[], log: ViolationLog): number {
  log.add({
    kind: 'stored-twice',
    room,
    clientMsgId,
    seq: seqs[0]!,
    detail: `one clientMsgId stored under seqs ${seqs.join(', ')}`,
  });
  return seqs.length - 1;
}

/** FNV-1a, 32 bits: a settled message's clientMsgId, checked against its copies and the store. */
function cmidHash(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

function emptyStore(): StoreState {
  return {
    messages: 0,
    lost: 0,
    duplicates: 0,
    seqs: new ChunkedBits(),
    storedSeq: new ChunkedNumbers(),
    multi: new Map(),
    foreign: new Map(),
    violations: new ViolationLog(),
  };
}
