/** One room's tail in RecentTailStore (recent-tail.ts): its messages, and how a tail is built. */
import type { ChatMessage } from './types.js';

export interface RoomTail {
  /** The newest messages of the room, ascending, dense, ending at `last`. */
  messages: ChatMessage[];
  /** The room's highest stored seq (0: empty room). */
  last: number;
  /** By clientMsgId and user: retries of messages in the tail are answered from memory. */
  byClient: Map<string, ChatMessage>;
  bytes: number;
}

/** Fixed cost of a message in memory (object, strings' headers, map entries), estimated. */
const MESSAGE_OVERHEAD_BYTES = 300;

export function messageBytes(m: ChatMessage): number {
  return (
    MESSAGE_OVERHEAD_BYTES +
    2 * (m.room.length + m.id.length + m.clientMsgId.length + m.user.length + (m.text?.length ?? 0)) +
    (m.file ? 2 * (m.file.id.length + m.file.name.length + m.file.contentType.length) + 64 : 0)
  );
}

export function clientKey(clientMsgId: string, user: string): string {
  return `${clientMsgId}\u0000${user}`;
}

/** Messages of `room`, ascending and dense: what a tail may be made of. */
export function isDenseTail(room: string, messages: readonly ChatMessage[]): boolean {
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    if (typeof m !== 'object' || m === null || m.room !== room || !Number.isInteger(m.seq) || m.seq < 1)
      return false;
    if (typeof m.id !== 'string' || typeof m.clientMsgId !== 'string' || typeof m.user !== 'string')
      return false;
    if (i > 0 && m.seq !== messages[i - 1]!.seq + 1) return false;
  }
  return true;
}

export function fromMessages(messages: ChatMessage[]): RoomTail {
  const tail: RoomTail = { messages: [], last: 0, byClient: new Map(), bytes: 0 };
  for (const m of messages) {
    tail.messages.push(m);
    tail.byClient.set(clientKey(m.clientMsgId, m.user), m);
    tail.bytes += messageBytes(m);
  }
  tail.last = messages.at(-1)?.seq ?? 0;
  return tail;
}

/** The loaded tail plus what was stored meanwhile, or undefined when they do not join up densely. */
export function merge(loaded: ChatMessage[], appended: ChatMessage[]): RoomTail | undefined {
  const all = [...loaded];
  let last = loaded.at(-1)?.seq ?? 0;
  for (const m of [...appended].sort((a, b) => a.seq - b.seq)) {
    if (m.seq <= last) continue;
    if (m.seq !== last + 1) return undefined;
    all.push(m);
    last = m.seq;
  }
  for (let i = 1; i < all.length; i++) if (all[i]!.seq !== all[i - 1]!.seq + 1) return undefined;
  return fromMessages(all);
}
