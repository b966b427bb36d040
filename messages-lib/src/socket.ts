import type { WebSocketLike } from './client-options.js';
import type { ServerFrame } from './types.js';

/** `WebSocket.OPEN`: the readyState of a socket that can send. */
export const OPEN = 1;

/** The frame a socket message carries (text or UTF-8 bytes of JSON), or undefined. */
export function frameOf(data: unknown): ServerFrame | undefined {
  let text: string;
  if (typeof data === 'string') text = data;
  else if (data instanceof ArrayBuffer) text = new TextDecoder().decode(data);
  else if (ArrayBuffer.isView(data))
    text = new TextDecoder().decode(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  else return undefined;
  let frame: ServerFrame;
  try {
    frame = JSON.parse(text) as ServerFrame;
  } catch {
    return undefined;
  }
  if (typeof frame !== 'object' || frame === null) return undefined;
  return frame;
}

/** Closes a socket and waits (bounded) for its close event. */
export function closeSocket(ws: WebSocketLike, code: number, reason: string, abrupt = false): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(finish, 1_000);
    function finish(): void {
      clearTimeout(timer);
      resolve();
    }
    ws.onopen = null;
    ws.onmessage = null;
    ws.onerror = () => {};
    ws.onclose = finish;
    try {
      if (abrupt && typeof ws.terminate === 'function') ws.terminate();
      else ws.close(code, reason.slice(0, 120));
    } catch {
      finish();
    }
  });
}
