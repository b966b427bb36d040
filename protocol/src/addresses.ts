import type {
  ChatMessage,
  HistoryReply,
  HistoryRequest,
  JoinReply,
  JoinRequest,
  LeaveReply,
  LeaveRequest,
  PresenceUpdate,
  SendAck,
  SendRequest,
} from './messages.js';
import { ROOM_NAME_SOURCE } from './patterns.js';

/**
 * A bus address that answers requests: at run time a plain string (what goes on the wire), for
 * the compiler also the body it takes and the reply it gives, so that
 * `request(Chat.join, body)` checks the body and types the reply without a cast.
 */
export type RequestAddress<Req, Rep> = string & {
  readonly __request?: Req;
  readonly __reply?: Rep;
};

/** An address messages are published on, typed by their body. */
export type PublishAddress<Body> = string & { readonly __body?: Body };

export type RequestOf<A> = A extends RequestAddress<infer Req, unknown> ? Req : never;
export type ReplyOf<A> = A extends RequestAddress<unknown, infer Rep> ? Rep : never;
export type BodyOf<A> = A extends PublishAddress<infer Body> ? Body : never;

const requestAddress = <Req, Rep>(address: string) => address as RequestAddress<Req, Rep>;
const publishAddress = <Body>(address: string) => address as PublishAddress<Body>;

/** The chat service's addresses on the bus (docs/chat.md lists them with their bodies). */
export const Chat = {
  join: requestAddress<JoinRequest, JoinReply>('chat.join'),
  send: requestAddress<SendRequest, SendAck>('chat.send'),
  history: requestAddress<HistoryRequest, HistoryReply>('chat.history'),
  leave: requestAddress<LeaveRequest, LeaveReply>('chat.leave'),
  room: (room: string) => publishAddress<ChatMessage>(`chat.room.${room}`),
  presence: (room: string) => publishAddress<PresenceUpdate>(`chat.presence.${room}`),
} as const;

/** The addresses a chat client may send to (the bridges' default inbound permissions). */
export const CHAT_REQUEST_ADDRESSES: readonly string[] = [Chat.join, Chat.send, Chat.history, Chat.leave];

/** Regexes (sources, anchored by the bridge) of every room's and presence address. */
export const ChatAddressRegex = {
  room: `chat\\.room\\.${ROOM_NAME_SOURCE}`,
  presence: `chat\\.presence\\.${ROOM_NAME_SOURCE}`,
} as const;

/** The reserved address of Switchboard's control messages (hello, retry, reconnect) to a socket. */
export const CONTROL_ADDRESS = '__sb.control';
