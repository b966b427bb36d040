/**
 * Headers a bridge sets on chat requests so presence follows the connection, not the request.
 * Clients never set them: a bridge drops every client-sent header with the reserved prefix.
 */
export const ChatHeader = {
  session: 'sb-session',
  /** Also the gRPC response metadata naming the node that served a call. */
  node: 'sb-node',
  /** Set by a bridge only when a verified token names the user: it overrides the body's user. */
  verifiedUser: 'sb-user',
} as const;

export const RESERVED_HEADER_PREFIX = 'sb-';
