/** A file attached to a message (filled in by the server from its file store). */
export interface FileRef {
  id: string;
  name: string;
  size: number;
  contentType: string;
}

/** A stored chat message as the chat service publishes it on `chat.room.<room>`. */
export interface ChatMessage {
  room: string;
  /** Per room, assigned by the server, strictly increasing. */
  seq: number;
  /** Server-made unique id. */
  id: string;
  /** The sender's idempotency key. */
  clientMsgId: string;
  user: string;
  text?: string;
  file?: FileRef;
  /** Server time of storage, ms since the epoch. */
  ts: number;
  /** Live messages: the store's epoch (see JoinReply.epoch). */
  epoch?: string;
}

/** The reply to `chat.send`: the message is stored. */
export interface SendAck {
  seq: number;
  id: string;
  ts: number;
}

/** The reply to `chat.join`. */
export interface JoinReply {
  room: string;
  lastSeq: number;
  messages: ChatMessage[];
  truncated: boolean;
  resumeToken?: string;
  /** The store's epoch: a new one means the room's seqs started again (a reset or restored store). */
  epoch?: string;
}

/** The body of `chat.presence.<room>`. */
export interface PresenceUpdate {
  room: string;
  users: string[];
}

/** A frame the bridge sends (Vert.x event bus bridge protocol). */
export interface ServerFrame {
  type: string;
  address?: string;
  body?: unknown;
  headers?: Record<string, string>;
  replyAddress?: string;
  failureCode?: number;
  failureType?: string;
  message?: string;
  /** In a refusal: the refused frame's `address` and `replyAddress` (read by refusalOf). */
  refused?: unknown;
}

/** The reserved address of Switchboard's control messages. */
export const CONTROL_ADDRESS = '__sb.control';

export function isChatMessage(value: unknown, room: string): value is ChatMessage {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Partial<ChatMessage>;
  return (
    m.room === room &&
    typeof m.seq === 'number' &&
    Number.isSafeInteger(m.seq) &&
    m.seq > 0 &&
    typeof m.id === 'string' &&
    typeof m.user === 'string'
  );
}
