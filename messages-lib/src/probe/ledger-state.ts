import { ChunkedBits, ChunkedNumbers } from './chunked.js';
import { ViolationLog } from './violations.js';

/**
 * The ledger's state, as plain records: a message's state, a client's, a room's, and a room's
 * stored history as far as it has been read; the factories that make them empty.
 */

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

// A message's state (per message key, in the ledger's `keyState` column).
export const UNSET = -1;
export const PENDING = 0;
export const ACKED = 1;
export const FAILED = 2;
/** Acked, held intact by every member, and compacted: see `compact`. */
export const SETTLED = 3;
/** Settled, then found once in the stored history under its acked seq, and forgotten: see `checkStoredSegment`. */
export const CHECKED = 4;

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
export interface RoomState {
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

export interface StoreState {
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
export interface Odd {
  seqs: number[];
  /** The first delivery of the message to this client was one of these. */
  first: boolean;
}

export function emptyRoom(name: string): RoomState {
  return {
    name,
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
}

export function emptyClient(index: number, user: string, room: string, roomIndex: number): ClientState {
  return {
    index,
    user,
    room,
    roomIndex,
    seqs: new ChunkedBits(),
    got: new ChunkedBits(),
    ok0: new ChunkedBits(),
    prevSeq: undefined,
    hellos: 0,
    lastAt: 0,
    longestGap: 0,
  };
}

export function emptyStore(): StoreState {
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

/** FNV-1a, 32 bits: a settled message's clientMsgId, checked against its copies and the store. */
export function cmidHash(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}
