import type { RequestAddress } from '@switchboard/protocol';
import type { ChatError } from './errors.js';
import type { OutboxEntry } from './outbox.js';
import type { Refused } from './refusal.js';
import type { Room } from './room.js';
import type { ChatMessage, FileRef, JoinReply, SendAck } from './types.js';
import type { BackoffOptions } from './util.js';

export type RoomState = 'joining' | 'joined' | 'rejoining' | 'left';

export interface RoomEvents {
  /** A message, in seq order, each seq exactly once. */
  message: ChatMessage;
  /** The users present in the room (after every join, leave, or node death). */
  presence: string[];
  /** The outbox of the room changed (an entry was added, acked, or failed). */
  pending: readonly OutboxEntry[];
  /** An outbox entry was stored by the server. */
  sent: { entry: OutboxEntry; ack: SendAck };
  /** An outbox entry was refused for good (RECIPIENT_FAILURE 4xx/500) and dropped. */
  sendFailed: { entry: OutboxEntry; error: ChatError };
  /** A (re)join succeeded; `rejoin` is false the first time. */
  joined: { lastSeq: number; rejoin: boolean };
  /**
   * The server's store was reset or restored (its epoch changed): the room's seqs started again.
   * The room dropped its cursor and the messages it held, and rejoins for the newest messages;
   * `message` events follow for the new history. `from`/`to`: the old and new epochs.
   */
  resync: { from: string; to: string };
  /** Everything the server had when asked has been delivered; `seq` is the highest delivered. */
  synced: { seq: number };
  state: RoomState;
  error: ChatError;
}

/** Emits one of a room's events: how the room's parts speak through it. Internal. */
export type EmitRoomEvent = <K extends keyof RoomEvents>(event: K, payload: RoomEvents[K]) => void;

export interface HistoryQuery {
  afterSeq?: number;
  beforeSeq?: number;
  limit?: number;
}

/** What a room needs from its client. Internal. */
export interface RoomHost {
  readonly user: string;
  readonly settings: {
    gapFillMs: number;
    historyPageSize: number;
    maxMessages: number;
    maxBuffered: number;
    retry: BackoffOptions;
    random: () => number;
  };
  /**
   * The live feed is authoritative: it carries every stored message after the join's `since`,
   * gap-free and in seq order (a gRPC Join stream), so a seq it skips is a hole the server
   * confirmed and nothing waits for a gap fill. False for bus subscriptions (WebSocket).
   */
  readonly authoritativeFeed?: boolean;
  isOpen(): boolean;
  /**
   * `refusal`: the error the request fails with when the bridge refuses its frame (default: a
   * BRIDGE error naming the address).
   */
  request<Req, Rep>(
    address: RequestAddress<Req, Rep>,
    body: NoInfer<Req>,
    refusal?: (reason: string, message?: string) => ChatError,
  ): Promise<Rep>;
  /**
   * Registers the address on the current socket (once per socket); throws DISCONNECTED when not
   * open. `onRefused` hears of the bridge refusing the registration.
   */
  register(address: string, onRefused?: Refused): void;
  /** Unregisters the address if registered on the current socket (best effort). */
  unregister(address: string): void;
  /** Throws ChatError INVALID when the frame would exceed the bridge's frame limit. */
  checkFrame(frame: object): void;
  route(address: string, handler: ((body: unknown) => void) | undefined): void;
  persist(entry: OutboxEntry): Promise<void>;
  unpersist(clientMsgId: string): void;
  /** A room that stops keeps its unacked entries for a later join of the same room. */
  giveBack(entries: OutboxEntry[]): void;
  upload(data: Blob | ArrayBuffer | ArrayBufferView, name: string, contentType?: string): Promise<FileRef>;
  catchingUp(room: string, missed: number): void;
  reportError(err: ChatError): void;
  forget(room: Room): void;
}

/**
 * What `chat.join` answers, as the host delivers it. `feedFrom`: with an authoritative feed, the
 * seq the feed continues after (a first join without since starts at the newest messages).
 */
export type JoinResult = JoinReply & { feedFrom?: number };
