import type { ChatMessage } from '@switchboard/protocol';

export type { ChatMessage, FileRef, JoinReply, PresenceUpdate, SendAck } from '@switchboard/protocol';

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
