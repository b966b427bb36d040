import { z } from 'zod';
import type { BridgeErrorBody } from '../core/refusals.js';

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
  // Vert.x checks a publish's replyAddress as a send's, then ignores it.
  z.object({
    type: z.literal('publish'),
    address: z.string(),
    body: z.unknown().optional(),
    headers,
    replyAddress: z.string().optional(),
  }),
  z.object({ type: z.literal('register'), address: z.string(), headers }),
  z.object({ type: z.literal('unregister'), address: z.string(), headers }),
  z.object({ type: z.literal('ping') }),
]);

export type InboundFrame = z.infer<typeof inboundFrame>;

export const KNOWN_TYPES = new Set(['send', 'publish', 'register', 'unregister', 'ping']);

/**
 * A field Vert.x reads with `JsonObject.getString`, read the same way: `null` is absent (undefined),
 * integers and booleans become the strings Java prints for them (`5` → `"5"`). Other values (objects,
 * arrays, fractions), which Java would print in its own notation, are returned as they are: the
 * frame's schema refuses them (docs/protocol.md, "Differences from Vert.x").
 */
export function vertxString(value: unknown): unknown {
  if (value === null) return undefined;
  if (typeof value === 'boolean' || (typeof value === 'number' && Number.isSafeInteger(value)))
    return String(value);
  return value;
}

/**
 * The frame with its string fields read as Vert.x reads them (vertxString): `address`,
 * `replyAddress` and the values of `headers`; `headers: null` is absent, as in Vert.x.
 */
export function asVertxReads(frame: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...frame };
  for (const key of ['address', 'replyAddress'] as const) {
    if (key in out) out[key] = vertxString(out[key]);
  }
  const h = out.headers;
  if (h === null) out.headers = undefined;
  else if (typeof h === 'object' && !Array.isArray(h)) {
    const headers: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(h)) headers[k] = v === null ? v : vertxString(v);
    out.headers = headers;
  }
  return out;
}

/**
 * What a refusal names of the frame it refuses, so that a client can tell which of its operations
 * failed: the frame's `address` and `replyAddress` exactly as the client sent them, sent as the err
 * frame's `refused` field.
 */
export interface RefusedFrame {
  address?: string;
  replyAddress?: string;
}

/**
 * The `address` and `replyAddress` of a frame, to name it in its refusal: only strings (a value of
 * another type would be the client's data, echoed back) and only up to `maxLength` characters, so
 * an err frame stays small whatever the client sent.
 */
export function refusedFrame(fields: Record<string, unknown>, maxLength: number): RefusedFrame {
  const named: RefusedFrame = {};
  for (const key of ['address', 'replyAddress'] as const) {
    const value = fields[key];
    if (typeof value === 'string' && value.length <= maxLength) named[key] = value;
  }
  return named;
}

export function errFrame(body: BridgeErrorBody, message?: string, refused?: RefusedFrame): string {
  const frame: Record<string, unknown> = { type: 'err', body };
  if (message) frame.message = message;
  // Nested, not at the top level: Vert.x's JS client and older messages-lib clients take an err
  // frame with a top-level `address` for a failure at that address (a reply failure), and would
  // lose the refusal; a field they do not know they ignore.
  if (refused?.address !== undefined || refused?.replyAddress !== undefined) frame.refused = { ...refused };
  return JSON.stringify(frame);
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
