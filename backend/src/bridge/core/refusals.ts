/**
 * Why a bridge refuses something: the bodies of `{type:"err", body}` frames (Vert.x's, plus our
 * limits) on the WebSocket and SockJS endpoints, and the reason that starts a gRPC status's details.
 */
export type BridgeErrorBody =
  | 'invalid_json'
  | 'missing_type'
  | 'missing_address'
  | 'invalid_type'
  | 'access_denied'
  | 'max_handlers_reached'
  | 'max_address_length_reached'
  | 'address_already_registered'
  | 'invalid_reply_address'
  | 'not_logged_in'
  | 'auth_error'
  | 'frame_too_large'
  | 'rate_limited'
  | 'too_many_connections'
  | 'rejected'
  | 'invalid_frame';
