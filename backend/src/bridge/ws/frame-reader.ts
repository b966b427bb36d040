import type { BridgeErrorBody } from '../core/refusals.js';
import {
  asVertxReads,
  type InboundFrame,
  inboundFrame,
  KNOWN_TYPES,
  type RefusedFrame,
  refusedFrame,
  vertxString,
} from './frames.js';

/** The ping almost every client sends, every few seconds, spelled as almost all spell it. */
export const PING_TEXT = '{"type":"ping"}';

/** What a client's frame turned out to be. */
export type ReadFrame =
  | { readonly kind: 'ping' }
  | {
      readonly kind: 'frame';
      readonly frame: Exclude<InboundFrame, { type: 'ping' }>;
      readonly named: RefusedFrame | undefined;
    }
  | {
      readonly kind: 'refused';
      /** The frame as its refusal names it; undefined when it was no JSON object or is not to be named. */
      readonly named: RefusedFrame | undefined;
      readonly body: BridgeErrorBody;
      readonly message?: string;
    };

const PING: ReadFrame = { kind: 'ping' };

function refused(named: RefusedFrame | undefined, body: BridgeErrorBody, message?: string): ReadFrame {
  return message === undefined ? { kind: 'refused', named, body } : { kind: 'refused', named, body, message };
}

/**
 * Reads a frame's text and checks it as Vert.x does, in Vert.x's order, up to what needs no state
 * of the session (permissions, handlers and hooks come after). `nameRefusals`: whether a refusal
 * names the frame (its `refused` field), which only the raw endpoint does: SockJS is there for
 * Vert.x's own clients, which get Vert.x's frames as they are.
 */
export function readFrame(data: string, nameRefusals: boolean, maxAddressLength: number): ReadFrame {
  // Every client pings every few seconds, and almost all spell it this way: no parse for it.
  if (data === PING_TEXT) return PING;
  let raw: unknown;
  try {
    raw = JSON.parse(data);
  } catch {
    return refused(undefined, 'invalid_json');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return refused(undefined, 'invalid_json', 'a frame is a JSON object');
  }
  // In Vert.x's order: the type, a ping, the address, then what the type must be.
  const fields = raw as Record<string, unknown>;
  const named = nameRefusals ? refusedFrame(fields, maxAddressLength) : undefined;
  const type = fields.type;
  if (type === undefined || type === null) return refused(named, 'missing_type');
  if (type === 'ping') return PING;
  const address = vertxString(fields.address);
  if (address === undefined) return refused(named, 'missing_address');
  if (typeof type !== 'string' || !KNOWN_TYPES.has(type)) return refused(named, 'invalid_type');
  if (typeof address !== 'string') return refused(named, 'invalid_frame', 'address: expected a string');
  const parsed = inboundFrame.safeParse(asVertxReads(fields));
  if (!parsed.success) {
    return refused(
      named,
      'invalid_frame',
      parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
    );
  }
  const frame = parsed.data;
  if (frame.type === 'ping') return PING;
  // Checked for every type, before any permission regex runs on the address (Vert.x: register only).
  if (frame.address.length > maxAddressLength) return refused(named, 'max_address_length_reached');
  return { kind: 'frame', frame, named };
}
