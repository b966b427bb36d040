import { EventBusError } from './failures.js';

/** Turns a body into bytes for the wire and back. Names travel in frames, so keep them stable. */
export interface MessageCodec {
  readonly name: string;
  encode(body: unknown): Buffer;
  decode(bytes: Buffer): unknown;
}

export const jsonCodec: MessageCodec = {
  name: 'json',
  encode(body) {
    let text: string | undefined;
    try {
      text = JSON.stringify(body === undefined ? null : body);
    } catch (err) {
      throw new EventBusError('INVALID_BODY', `body is not JSON-serializable: ${(err as Error).message}`);
    }
    return Buffer.from(text ?? 'null', 'utf8');
  },
  decode(bytes) {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  },
};

export const bytesCodec: MessageCodec = {
  name: 'bytes',
  encode(body) {
    if (body instanceof Uint8Array) {
      return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    }
    throw new EventBusError('INVALID_BODY', 'the bytes codec needs a Buffer or Uint8Array body');
  },
  decode(bytes) {
    return bytes;
  },
};

/** Codecs by name; a bus owns one registry so that nothing is global. */
export class CodecRegistry {
  private readonly codecs = new Map<string, MessageCodec>([
    [jsonCodec.name, jsonCodec],
    [bytesCodec.name, bytesCodec],
  ]);

  register(codec: MessageCodec): void {
    if (this.codecs.has(codec.name)) {
      throw new EventBusError('INVALID_OPTIONS', `codec "${codec.name}" is already registered`);
    }
    this.codecs.set(codec.name, codec);
  }

  get(name: string): MessageCodec {
    const codec = this.codecs.get(name);
    if (!codec) throw new EventBusError('UNKNOWN_CODEC', `no codec named "${name}"`);
    return codec;
  }

  /** Raw bytes pick the bytes codec unless told otherwise, like Vert.x picks a codec by type. */
  forBody(body: unknown, name: string | undefined): MessageCodec {
    if (name !== undefined) return this.get(name);
    return body instanceof Uint8Array ? bytesCodec : jsonCodec;
  }
}
