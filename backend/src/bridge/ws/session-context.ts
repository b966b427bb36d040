import type { EventBus } from '../../eventbus/types.js';
import type { BridgeSocketInfo } from '../core/hook.js';
import type { BridgeOptions } from '../core/options.js';
import type { BridgeErrorBody } from '../core/refusals.js';
import { ClientReplies } from './client-replies.js';
import { errFrame, type RefusedFrame } from './frames.js';
import { Outbox } from './outbox.js';
import type { BridgeTransport } from './transport.js';

/**
 * What the parts of one session share (bridge-session.ts is the whole): the bus, the socket and
 * its identity for hooks, the options, the outbox, the messages waiting for the client's reply,
 * and whether the session is closed.
 */
export class SessionContext {
  /** Set once, when the socket is gone or refused: nothing is written or started after. */
  closed = false;
  readonly outbox: Outbox;
  readonly replies: ClientReplies;

  constructor(
    readonly bus: EventBus,
    readonly transport: BridgeTransport,
    readonly options: BridgeOptions,
    readonly info: BridgeSocketInfo,
    /** Releases the session after its socket was closed for not reading. */
    release: () => void,
  ) {
    this.outbox = new Outbox(this, transport, options, release);
    this.replies = new ClientReplies(options.replyTimeoutMs);
  }

  /** A refusal with nothing to name: the frame was not read (too large, over the rate) or is no JSON object. */
  error(body: BridgeErrorBody, message?: string): void {
    this.outbox.write(errFrame(body, message));
  }

  /** A refusal of a frame that was read: it names the frame (see refusedFrame). */
  refuse(named: RefusedFrame | undefined, body: BridgeErrorBody, message?: string): void {
    this.outbox.write(errFrame(body, message, named));
  }
}
