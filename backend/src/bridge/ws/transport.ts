import type { OutboundFrame } from './outbound-frame.js';

/** What a session needs from its socket: raw WebSocket and SockJS both provide it. */
export interface BridgeTransport {
  send(text: string): void;
  /**
   * Writes `first`, then `more` if any, at once (one syscall where the socket allows it). Returns false once
   * the socket holds more than its high-water mark unwritten (as `Writable.write`), so that
   * `bufferedAmount` is asked only then. Optional: without it each frame goes through `send`.
   */
  sendFrames?(first: OutboundFrame, more: readonly OutboundFrame[] | undefined): boolean;
  /** Bytes queued and not yet written to the network. */
  bufferedAmount(): number;
  close(code: number, reason: string): void;
  /**
   * Switchboard's additions (pong frames, `__sb.control` hello and reconnect frames) go only to
   * raw WebSocket clients; Vert.x's own SockJS client would log them as unhandled.
   */
  readonly extensions: boolean;
}

export const CloseCode = {
  NORMAL: 1000,
  POLICY: 1008,
  TOO_BIG: 1009,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  IDLE: 4000,
} as const;
