/** A file attached to a message: metadata only; the server fills it in from its file store. */
export interface FileRef {
  id: string;
  name: string;
  size: number;
  contentType: string;
}

/** A message as the store keeps it. `seq` is per room, assigned by the server, never reused. */
export interface StoredMessage {
  room: string;
  /** Per room, strictly increasing. */
  seq: number;
  /** Server-made unique id. */
  id: string;
  /** The sender's idempotency key: one stored message per (room, clientMsgId). */
  clientMsgId: string;
  user: string;
  text?: string;
  file?: FileRef;
  /** Server time of storage, ms since the epoch. */
  ts: number;
}

/** A message as a client receives it: on `chat.room.<room>`, in join and history replies. */
export interface ChatMessage extends StoredMessage {
  /** Live messages: the store's epoch (see JoinReply.epoch). */
  epoch?: string;
}

/** The body of `chat.join`. */
export interface JoinRequest {
  room: string;
  user: string;
  /** The highest seq the client holds without gaps: the reply returns what came after. */
  since?: number;
  /** Open mode: the token a previous join returned, to take the name back. */
  resumeToken?: string;
}

/** The reply to `chat.join`. */
export interface JoinReply {
  room: string;
  lastSeq: number;
  messages: ChatMessage[];
  /** True when more messages follow the returned ones: page on with chat.history afterSeq. */
  truncated: boolean;
  /** Open mode: proves on a later join that the caller is the client holding this name. */
  resumeToken?: string;
  /**
   * The store's epoch: a new one means the room's seqs started again (a reset or restored store).
   * This server always sends it; optional so that clients tolerate a server that does not.
   */
  epoch?: string;
}

/** The body of `chat.send`: non-blank text, a file uploaded before, or both. */
export interface SendRequest {
  room: string;
  user: string;
  clientMsgId: string;
  text?: string;
  file?: { id: string };
}

/** The reply to `chat.send`: the message is stored. */
export interface SendAck {
  seq: number;
  id: string;
  ts: number;
}

/** The body of `chat.history`. */
export interface HistoryRequest {
  room: string;
  /** Messages with seq > afterSeq, oldest first (paging forward). */
  afterSeq?: number;
  /** Messages with seq < beforeSeq; with no afterSeq, the newest `limit` of them (paging back). */
  beforeSeq?: number;
  /** At most DEFAULT_CHAT_LIMITS.historyMaxLimit; the server's default is 100. */
  limit?: number;
}

/** The reply to `chat.history`. */
export interface HistoryReply {
  epoch?: string;
  messages: ChatMessage[];
}

/** The body of `chat.leave`. */
export interface LeaveRequest {
  room: string;
  user: string;
}

/** The reply to `chat.leave`: whether the connection was present in the room. */
export interface LeaveReply {
  left: boolean;
}

/** The body of `chat.presence.<room>`. */
export interface PresenceUpdate {
  room: string;
  users: string[];
}
