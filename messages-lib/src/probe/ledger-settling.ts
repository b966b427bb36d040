import { ACKED, PENDING, type RoomState, SETTLED, cmidHash } from './ledger-state.js';
import { StoreCheckingLedger } from './ledger-store-check.js';
import type { ViolationLog } from './violations.js';

/**
 * Settling and sweeping, the third layer of `ProbeLedger`: what is resolved is judged (or, in a
 * run, settled into a few numbers) and its columns dropped, so memory follows the open messages.
 */
export abstract class SettlingLedger extends StoreCheckingLedger {
  protected lostOnline = 0;
  protected unackedOnline = 0;

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
}
