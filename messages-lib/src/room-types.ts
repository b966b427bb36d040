import type {
  HistoryReply,
  HistoryRequest,
  JoinRequest,
  LeaveReply,
  LeaveRequest,
  SendRequest,
} from '@switchboard/protocol';
import type { ChatError } from './errors.js';
import type { RefusalError } from './pending-requests.js';
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

/** What a room needs from its client, whatever the transport. Internal. */
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
  persist(entry: OutboxEntry): Promise<void>;
  unpersist(clientMsgId: string): void;
  /** A room that stops keeps its unacked entries for a later join of the same room. */
  giveBack(entries: OutboxEntry[]): void;
  upload(data: Blob | ArrayBuffer | ArrayBufferView, name: string, contentType?: string): Promise<FileRef>;
  catchingUp(room: string, missed: number): void;
  reportError(err: ChatError): void;
  forget(room: Room): void;
}

/** Where a room's live traffic goes: its messages and its presence snapshots, as received. */
export interface RoomFeed {
  message(body: unknown): void;
  presence(body: unknown): void;
}

/**
 * One room's traffic over one transport: the four requests, typed, and the live feed. The
 * WebSocket client's is a view on its event bus (bus-room-transport.ts); the gRPC client's is the
 * room's Join stream and unary calls (grpc/room-link.ts). Internal.
 */
export interface RoomTransport {
  /**
   * The live feed is authoritative: it carries every stored message after the join's `since`,
   * gap-free and in seq order (a gRPC Join stream), so a seq it skips is a hole the server
   * confirmed and nothing waits for a gap fill. False for bus subscriptions (WebSocket).
   */
  readonly authoritativeFeed: boolean;
  isOpen(): boolean;
  /**
   * Starts the room's live feed, then joins. A refused request fails with `refusal`'s error;
   * `onRefused` hears of the feed being refused (it may be after the join was answered).
   */
  join(body: JoinRequest, refusal: RefusalError, onRefused: Refused): Promise<JoinResult>;
  send(body: SendRequest): Promise<SendAck>;
  history(body: HistoryRequest): Promise<HistoryReply>;
  leave(body: LeaveRequest): Promise<LeaveReply>;
  /** Where the live feed goes from now on (undefined: nowhere). */
  listen(feed: RoomFeed | undefined): void;
  /** Ends the live feed (best effort): the room stopped. */
  stopFeed(): void;
  /** Throws ChatError INVALID when the send's frame would exceed the transport's frame limit. */
  checkFrame(frame: object): void;
}

/**
 * What `chat.join` answers, as the host delivers it. `feedFrom`: with an authoritative feed, the
 * seq the feed continues after (a first join without since starts at the newest messages).
 */
export type JoinResult = JoinReply & { feedFrom?: number };
