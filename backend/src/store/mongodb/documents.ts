/** The documents of `<prefix>messages` and `<prefix>rooms`, and messages to and from them. */
import type { ChatMessage, FileRef } from '../types.js';
import { orderMessage } from '../validate.js';

export interface MessageDoc {
  /** `<room>#<seq>`: room names never contain `#`. */
  _id: string;
  id: string;
  room: string;
  seq: number;
  clientMsgId: string;
  user: string;
  text?: string;
  file?: FileRef;
  ts: number;
}

/** A room that has (or had) messages: `<prefix>rooms`. */
export interface RoomDoc {
  _id: string;
  created: number;
}

function seqKey(room: string, seq: number): string {
  return `${room}#${seq}`;
}

export function toDoc(m: ChatMessage): MessageDoc {
  return { _id: seqKey(m.room, m.seq), ...m };
}

export function toMessage(doc: MessageDoc): ChatMessage {
  const { _id, ...message } = doc;
  return orderMessage(message);
}
