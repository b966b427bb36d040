/**
 * A server → client frame, serialized once and shared by every socket that receives it unchanged:
 * the JSON text, and (on first use) the complete WebSocket text frame around it, so a fan-out to a
 * thousand sockets costs one JSON.stringify and one UTF-8 encoding, not a thousand.
 */
export class OutboundFrame {
  private encoded: Buffer | undefined;

  constructor(readonly text: string) {}

  /** RFC 6455 unmasked, unfragmented text frame (server frames are never masked). */
  get wire(): Buffer {
    return (this.encoded ??= encodeTextFrame(this.text));
  }
}

export function encodeTextFrame(text: string): Buffer {
  const length = Buffer.byteLength(text);
  const header = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + length);
  frame[0] = 0x81; // FIN + opcode 1 (text)
  if (header === 2) {
    frame[1] = length;
  } else if (header === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  frame.write(text, header, 'utf8');
  return frame;
}
