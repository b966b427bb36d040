import { z } from 'zod';

/** Error bodies of `{type:"err", body}` frames: Vert.x's, plus our limits. */
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

export const CONTROL_ADDRESS = '__sb.control';
export const MAX_CLIENT_REPLY_ADDRESS = 36;

const headers = z.record(z.string(), z.string()).optional();

export const inboundFrame = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('send'),
    address: z.string(),
    body: z.unknown().optional(),
    headers,
    replyAddress: z.string().optional(),
  }),
  z.object({ type: z.literal('publish'), address: z.string(), body: z.unknown().optional(), headers }),
  z.object({ type: z.literal('register'), address: z.string(), headers }),
  z.object({ type: z.literal('unregister'), address: z.string(), headers }),
  z.object({ type: z.literal('ping') }),
]);

export type InboundFrame = z.infer<typeof inboundFrame>;

export const KNOWN_TYPES = new Set(['send', 'publish', 'register', 'unregister', 'ping']);

export function errFrame(body: BridgeErrorBody, message?: string): string {
  return JSON.stringify(message ? { type: 'err', body, message } : { type: 'err', body });
}

export function recFrame(
  address: string,
  body: unknown,
  headers?: Record<string, string>,
  replyAddress?: string,
): string {
  const frame: Record<string, unknown> = { type: 'rec', address, body };
  if (headers && Object.keys(headers).length > 0) frame.headers = headers;
  if (replyAddress) frame.replyAddress = replyAddress;
  return JSON.stringify(frame);
}

export function replyFailureFrame(
  address: string,
  failureType: string,
  failureCode: number,
  message: string,
): string {
  return JSON.stringify({ type: 'err', address, failureCode, failureType, message });
}

export const PONG_FRAME = '{"type":"pong"}';
