import { ChunkedNumbers, ClientMsgIdColumn } from './chunked.js';
import {
  type ClientState,
  type Odd,
  type RoomState,
  cmidHash,
  emptyClient,
  emptyRoom,
} from './ledger-state.js';
import type * as State from './ledger-state.js';
import { type Violation, ViolationLog } from './violations.js';

// Local copies of `ledger-state.ts`'s message states (the compiler checks they agree): `identify`
// runs for every delivery, and an imported binding is a load at every use (see `ledger.ts`).
const UNSET: typeof State.UNSET = -1;
const SETTLED: typeof State.SETTLED = 3;

/** How far back (messages of the room) a delivery whose text does not name it is searched for. */
const SEARCH_LIMIT = 100_000;

export interface LedgerOptions {
  /** Called on every violation as it is found (the canary logs them). */
  onViolation?: (v: Violation) => void;
}

/**
 * The ledger's tables: its clients and rooms, and per message key (run-wide message number) one
 * column each; how a message's text and clientMsgId name its key. The first layer of `ProbeLedger`
 * (store check, settling and the delivery path build on it): one object, so the hot paths read
 * these columns directly.
 */
export abstract class LedgerColumns {
  readonly clients: ClientState[];
  readonly violations: ViolationLog;
  protected readonly roomList: RoomState[] = [];
  private readonly roomByName = new Map<string, RoomState>();
  // Per message key (run-wide message number):
  protected readonly keyState = new ChunkedNumbers(Int8Array, UNSET);
  protected readonly keyRoom = new ChunkedNumbers(Int32Array, -1);
  protected readonly keyPos = new ChunkedNumbers(Int32Array, -1);
  protected readonly keyClient = new ChunkedNumbers(Int32Array, -1);
  protected readonly keySentAt = new ChunkedNumbers();
  protected readonly keyAckAt = new ChunkedNumbers();
  protected readonly keySeq = new ChunkedNumbers();
  protected readonly keyCmid = new ClientMsgIdColumn();
  protected readonly odd = new Map<string, Odd>();
  private readonly textPrefix: string;

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
        room = emptyRoom(c.room);
        this.roomByName.set(c.room, room);
        this.roomList.push(room);
      }
      room.members.push(index);
      return emptyClient(index, c.user, c.room, this.roomList.indexOf(room));
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

  /**
   * The key of the message of this run in `room` that `m` is, or undefined. Usually its text names
   * it and the clientMsgId confirms; otherwise (a garbled text) the room's recent messages are
   * searched by clientMsgId. Texts of other probe runs are not searched for.
   */
  protected identify(
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

  protected room(name: string): RoomState {
    const r = this.roomByName.get(name);
    if (!r) throw new Error(`probe: no room ${name}`);
    return r;
  }

  protected client(index: number): ClientState {
    const c = this.clients[index];
    if (!c) throw new Error(`probe: no client ${index}`);
    return c;
  }
}
