import {
  CHECKED,
  type RoomHistory,
  type StoreState,
  type StoredMessage,
  type StoredSegment,
  type RoomState,
  ACKED,
  emptyStore,
} from './ledger-state.js';
import { LedgerColumns } from './ledger-columns.js';
import type { StoreCheck } from './verify.js';
import { type ViolationLog, storedTwice } from './violations.js';

/**
 * The store check, the second layer of `ProbeLedger`: the rooms' stored history read page by page
 * (during the run, segment by segment, then the rest at the end) and checked against what was
 * acked; settled messages found in it are forgotten, so a long run's memory stays flat.
 */
export abstract class StoreCheckingLedger extends LedgerColumns {
  /** Every key below this was checked in the store during the run (its identity may be gone). */
  private checkedKeysBelow = 0;
  private checkedCount = 0;

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

  /** The store check over every room, violations into `log`. */
  checkStore(log: ViolationLog): StoreCheck {
    const out: StoreCheck = {
      checked: true,
      messages: 0,
      lost: 0,
      duplicates: 0,
      checkedDuringRun: this.checkedCount,
      errors: [],
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
  protected isChecked(key: number): boolean {
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
}
