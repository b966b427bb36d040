import type { FileRef, StoredMessage } from '@switchboard/protocol';

export type { FileRef } from '@switchboard/protocol';

/** A stored chat message: the protocol's, without the epoch live messages carry. */
export type ChatMessage = StoredMessage;

export interface AppendInput {
  room: string;
  user: string;
  clientMsgId: string;
  text?: string;
  file?: FileRef;
}

export interface AppendResult {
  message: ChatMessage;
  /** True when (room, clientMsgId) was stored before: `message` is the original, nothing new was written. */
  duplicate: boolean;
}

export interface HistoryQuery {
  /** Messages with seq > afterSeq, oldest first (paging forward). */
  afterSeq?: number;
  /** Messages with seq < beforeSeq; with no afterSeq, the newest `limit` of them (paging back). */
  beforeSeq?: number;
  limit: number;
}

/**
 * UNAVAILABLE: the database could not be reached or the outcome is unknown; BUSY: refused at once
 * because the store is slow or has too much work out (load-shed.ts), nothing was tried. Both are
 * retriable with the same clientMsgId.
 */
export type StoreErrorCode = 'UNAVAILABLE' | 'BUSY' | 'INVALID' | 'CLOSED';

export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The message store SPI. Two implementations pass one contract suite: embedded (local disk, one
 * process) and mongodb (any MongoDB-wire database; several nodes at once).
 *
 * - `append` is idempotent by (room, clientMsgId) and atomic: it resolves only once the message is
 *   durably stored, with a seq strictly greater than every seq stored before in that room, across
 *   every process using the same database, and across restarts.
 * - Seqs are dense: a seq exists only once its message is stored (the embedded store's one writer
 *   advances a room's seq only once its batch is on disk; the MongoDB store inserts under its
 *   unique `room_seq` index and retries on conflict: docs/store.md), so when seq n is visible
 *   every seq below n is stored too, and history can always fill a gap a client sees. Never reused.
 * - Results are always ordered by seq ascending.
 */
export interface MessageStore {
  readonly kind: string;
  open(): Promise<void>;
  append(input: AppendInput): Promise<AppendResult>;
  history(room: string, query: HistoryQuery): Promise<ChatMessage[]>;
  /** The newest `limit` messages of the room, oldest first. */
  latest(room: string, limit: number): Promise<ChatMessage[]>;
  /** The highest stored seq in the room (0 when none). */
  lastSeq(room: string): Promise<number>;
  /**
   * The store's epoch (after open): a random id made when the store's data was first created and
   * kept with it, so a reset or replaced store (whose seqs start again) has a new one. Clients
   * that see it change resync instead of taking new seqs for ones they already hold.
   */
  epoch(): string;
  /** Whether the store can take writes now (readiness). */
  isHealthy(): boolean;
  /** Resolves when every append accepted so far has settled (used by graceful drain). */
  flush(): Promise<void>;
  close(): Promise<void>;
}
