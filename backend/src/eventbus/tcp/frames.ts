import type { WireFailure, WireMessage } from '../transport.js';

/**
 * Node-to-node framing: `[u32 length][u8 kind][payload]`, length counting kind + payload.
 * A MESSAGE payload is `[u32 header length][header JSON][body bytes]`, so bodies are never
 * re-encoded on the way through.
 */
export const FrameKind = {
  HELLO: 1,
  MESSAGE: 2,
  PING: 3,
  PONG: 4,
  ERROR: 5,
} as const;
export type FrameKindValue = (typeof FrameKind)[keyof typeof FrameKind];

export const PROTOCOL_MAGIC = 'switchboard-bus/1';

export interface Hello {
  magic: string;
  nodeId: string;
}

export type Frame =
  | { kind: typeof FrameKind.HELLO; hello: Hello }
  | { kind: typeof FrameKind.MESSAGE; message: WireMessage }
  | { kind: typeof FrameKind.PING | typeof FrameKind.PONG }
  | { kind: typeof FrameKind.ERROR; text: string };

export class FrameError extends Error {
  override readonly name = 'FrameError';
}

interface MessageHeader {
  a: string;
  s: 0 | 1;
  c: string;
  r?: string;
  h?: Record<string, string>;
  f?: WireFailure;
}

function frame(kind: FrameKindValue, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + payload.length);
  out.writeUInt32BE(1 + payload.length, 0);
  out.writeUInt8(kind, 4);
  payload.copy(out, 5);
  return out;
}

export function encodeHello(nodeId: string): Buffer {
  return frame(FrameKind.HELLO, Buffer.from(JSON.stringify({ magic: PROTOCOL_MAGIC, nodeId })));
}

export function encodeError(text: string): Buffer {
  return frame(FrameKind.ERROR, Buffer.from(text, 'utf8'));
}

export const PING_FRAME = frame(FrameKind.PING, Buffer.alloc(0));
export const PONG_FRAME = frame(FrameKind.PONG, Buffer.alloc(0));

export function encodeMessage(message: WireMessage): Buffer {
  const header: MessageHeader = { a: message.address, s: message.send ? 1 : 0, c: message.codec };
  if (message.replyAddress) header.r = message.replyAddress;
  if (message.headers) header.h = message.headers;
  if (message.failure) header.f = message.failure;
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const length = 1 + 4 + headerBytes.length + message.body.length;
  const out = Buffer.allocUnsafe(4 + length);
  out.writeUInt32BE(length, 0);
  out.writeUInt8(FrameKind.MESSAGE, 4);
  out.writeUInt32BE(headerBytes.length, 5);
  headerBytes.copy(out, 9);
  message.body.copy(out, 9 + headerBytes.length);
  return out;
}

function decodeMessage(payload: Buffer): WireMessage {
  if (payload.length < 4) throw new FrameError('message frame shorter than its header length');
  const headerLength = payload.readUInt32BE(0);
  if (headerLength > payload.length - 4) {
    throw new FrameError(`message header length ${headerLength} exceeds the frame`);
  }
  let header: MessageHeader;
  try {
    header = JSON.parse(payload.subarray(4, 4 + headerLength).toString('utf8')) as MessageHeader;
  } catch {
    throw new FrameError('message header is not valid JSON');
  }
  if (
    typeof header !== 'object' ||
    header === null ||
    typeof header.a !== 'string' ||
    typeof header.c !== 'string'
  ) {
    throw new FrameError('message header lacks address or codec');
  }
  const message: WireMessage = {
    address: header.a,
    send: header.s === 1,
    codec: header.c,
    body: payload.subarray(4 + headerLength),
  };
  if (typeof header.r === 'string') message.replyAddress = header.r;
  if (header.h && typeof header.h === 'object') message.headers = header.h;
  if (header.f && typeof header.f === 'object') message.failure = header.f;
  return message;
}

/** Incremental decoder for one connection: feed chunks, get whole frames; throws FrameError on garbage. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxFrameBytes: number) {}

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    while (this.buffered >= 4) {
      const head = this.peek(4);
      const length = head.readUInt32BE(0);
      if (length === 0) throw new FrameError('frame of length 0');
      if (length > this.maxFrameBytes) {
        throw new FrameError(`frame length ${length} exceeds the limit of ${this.maxFrameBytes} bytes`);
      }
      if (this.buffered < 4 + length) break;
      const whole = this.take(4 + length);
      frames.push(parse(whole.readUInt8(4), whole.subarray(5)));
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined;
  }

  private take(n: number): Buffer {
    let first = this.chunks[0]!;
    if (first.length < n) {
      first = Buffer.concat(this.chunks);
      this.chunks = [first];
    }
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}

function parse(kind: number, payload: Buffer): Frame {
  switch (kind) {
    case FrameKind.HELLO: {
      let hello: Hello;
      try {
        hello = JSON.parse(payload.toString('utf8')) as Hello;
      } catch {
        throw new FrameError('hello frame is not valid JSON');
      }
      if (typeof hello?.nodeId !== 'string' || hello.magic !== PROTOCOL_MAGIC) {
        throw new FrameError(`hello frame must carry magic "${PROTOCOL_MAGIC}" and a nodeId`);
      }
      return { kind, hello };
    }
    case FrameKind.MESSAGE:
      return { kind, message: decodeMessage(payload) };
    case FrameKind.PING:
    case FrameKind.PONG:
      return { kind };
    case FrameKind.ERROR:
      return { kind, text: payload.toString('utf8') };
    default:
      throw new FrameError(`unknown frame kind ${kind}`);
  }
}
