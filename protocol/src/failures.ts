/** Codes of RECIPIENT_FAILURE replies from the chat service, HTTP-like so they read at a glance. */
export const ChatFailure = {
  BAD_REQUEST: 400,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  NAME_TAKEN: 409,
  /** A clientMsgId another user already used in the room. */
  CONFLICT: 409,
  TOO_LARGE: 413,
  INTERNAL: 500,
  /** The store is down or shedding load: retry later with the same clientMsgId. */
  UNAVAILABLE: 503,
} as const;

export type ChatFailureCode = (typeof ChatFailure)[keyof typeof ChatFailure];
