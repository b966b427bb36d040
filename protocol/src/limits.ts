export interface ChatLimits {
  /** Longest message text, in characters. */
  maxTextLength: number;
  /** Most messages a join returns when catching up from `since`; beyond, `truncated` is true. */
  joinMaxMessages: number;
  /** Messages a first join (no `since`) returns: the newest ones. */
  joinLatest: number;
  /** Largest `limit` of a history request. */
  historyMaxLimit: number;
}

/**
 * The server's defaults (CHAT_MAX_TEXT, CHAT_JOIN_MAX and CHAT_JOIN_LATEST override the first three);
 * clients size their requests by them.
 */
export const DEFAULT_CHAT_LIMITS: Readonly<ChatLimits> = {
  maxTextLength: 4_000,
  joinMaxMessages: 500,
  joinLatest: 50,
  historyMaxLimit: 500,
};

/** The bridge's default frame limit (BRIDGE_MAX_FRAME_BYTES): clients refuse larger frames early. */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024;
