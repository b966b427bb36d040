import type { BusObserver, BusTrafficKind } from './bus-options.js';
import { REPLY_PREFIX, validateAddress } from './address.js';
import type { CodecRegistry, MessageCodec } from './codecs.js';
import { EventBusError } from './failures.js';
import type { NodeTransport, PeerAddress, WireMessage } from './transport.js';
import type { DeliveryOptions, Headers, Message } from './types.js';

/** An inbound message before it is handed to handlers: decoded lazily, once per node. */
export interface Envelope {
  address: string;
  send: boolean;
  replyAddress: string | undefined;
  headers: Headers;
  codec: MessageCodec;
  bytes: Buffer;
  decoded?: { value: unknown };
  /** A publish's one Message, shared by all its local consumers (nothing in it answers). */
  shared?: Message<unknown>;
}

/** Checks and encodes an outgoing message: address, headers, codec, body size. */
export function encodeEnvelope(
  codecs: CodecRegistry,
  maxBodyBytes: number,
  address: string,
  body: unknown,
  options: DeliveryOptions,
  send: boolean,
  replyAddress: string | undefined,
): Envelope {
  validateAddress(address);
  const headers = checkHeaders(options.headers);
  const codec = codecs.forBody(body, options.codec);
  const bytes = codec.encode(body);
  if (bytes.length > maxBodyBytes) {
    throw new EventBusError(
      'MESSAGE_TOO_LARGE',
      `body is ${bytes.length} bytes, the limit is ${maxBodyBytes}`,
    );
  }
  return { address, send, replyAddress, headers, codec, bytes };
}

/** An envelope for a message from another node; undefined when its codec is unknown here. */
export function fromWire(codecs: CodecRegistry, message: WireMessage): Envelope | undefined {
  let codec: MessageCodec;
  try {
    codec = codecs.get(message.codec);
  } catch {
    return undefined;
  }
  return {
    address: message.address,
    send: message.send,
    replyAddress: message.replyAddress,
    headers: message.headers ?? {},
    codec,
    bytes: message.body,
  };
}

export function toWire(envelope: Envelope): WireMessage {
  const wire: WireMessage = {
    address: envelope.address,
    send: envelope.send,
    codec: envelope.codec.name,
    body: envelope.bytes,
  };
  if (envelope.replyAddress) wire.replyAddress = envelope.replyAddress;
  if (Object.keys(envelope.headers).length > 0) wire.headers = envelope.headers;
  return wire;
}

/** Hands a message to the transport for another node, telling the observer. */
export function deliverTo(
  transport: NodeTransport,
  observer: BusObserver | undefined,
  peer: PeerAddress,
  wire: WireMessage,
): void {
  observer?.outbound(trafficKind(wire), wire.body.length);
  transport.deliver(peer, wire);
}

export function trafficKind(wire: WireMessage): BusTrafficKind {
  if (wire.address.startsWith(REPLY_PREFIX)) return 'reply';
  return wire.send ? 'send' : 'publish';
}

function checkHeaders(headers: Headers | undefined): Headers {
  if (headers === undefined) return {};
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
    throw new EventBusError('INVALID_OPTIONS', 'headers must be an object of strings');
  }
  for (const [k, v] of Object.entries(headers)) {
    if (typeof v !== 'string') {
      throw new EventBusError('INVALID_OPTIONS', `header "${k}" must be a string`);
    }
  }
  return headers;
}
