/** The chat service's addresses on the bus (docs/chat.md lists them with their bodies). */
export const ChatAddress = {
  join: 'chat.join',
  send: 'chat.send',
  history: 'chat.history',
  leave: 'chat.leave',
  room: (room: string) => `chat.room.${room}`,
  presence: (room: string) => `chat.presence.${room}`,
} as const;

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
  UNAVAILABLE: 503,
} as const;

/** Headers a bridge sets on chat requests so presence follows the connection, not the request. */
export const ChatHeader = {
  session: 'sb-session',
  node: 'sb-node',
  /** Set by a bridge only when a verified token names the user: it overrides the body's user. */
  verifiedUser: 'sb-user',
} as const;
