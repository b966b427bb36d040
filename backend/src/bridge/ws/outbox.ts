import type { BridgeObserver, BridgeOptions } from '../core/options.js';
import { OutboundFrame } from './outbound-frame.js';
import { type BridgeTransport, CloseCode } from './transport.js';

/**
 * Sessions with frames waiting to be written. Frames queue per session and leave once per event
 * loop turn (setImmediate, after the I/O callbacks of the turn): every message published in the
 * same turn reaches a socket in one write, and one syscall per frame per socket becomes one per
 * socket per turn under load, with no added wait when idle.
 */
let unflushed: (Outbox | undefined)[] = [];
let unflushedCount = 0;
// The queue of the previous turn, kept with its capacity: nothing on the fan-out path allocates
// per delivery. (An array per socket per turn was pretenured by V8 once the connections of a
// join wave kept theirs, and then every delivery allocated in the old generation: a major GC
// every ~2 s at 40k deliveries/s, about a tenth of the node's CPU.)
let spareUnflushed: (Outbox | undefined)[] = [];
let flushScheduled = false;

function queueFlush(outbox: Outbox): void {
  unflushed[unflushedCount++] = outbox;
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushAll);
  }
}

function flushAll(): void {
  flushScheduled = false;
  const outboxes = unflushed;
  const count = unflushedCount;
  unflushed = spareUnflushed;
  unflushedCount = 0;
  // Frames are counted for metrics once per turn and observer, not per socket: this is the loop
  // that runs once per delivery under fan-out.
  let observer: BridgeObserver | undefined;
  let frames = 0;
  for (let i = 0; i < count; i++) {
    const outbox = outboxes[i]!;
    outboxes[i] = undefined;
    const next = outbox.observer;
    if (next !== observer) {
      if (frames > 0) observer?.framesOut(frames);
      [observer, frames] = [next, 0];
    }
    frames += outbox.flush();
  }
  if (frames > 0) observer?.framesOut(frames);
  spareUnflushed = outboxes;
}

/**
 * A session's frames on their way to its socket: queued during the loop turn, written together at
 * its end, and never more than BRIDGE_MAX_BUFFERED_BYTES waiting for a client that does not read.
 */
export class Outbox {
  /** Bytes of replies queued this turn and not yet handed to the socket. */
  private queuedReplyBytes = 0;
  /** The next frame to write, and any queued after it in the same turn (no array for one). */
  private nextFrame: OutboundFrame | undefined;
  private moreFrames: OutboundFrame[] | undefined;

  constructor(
    /** Once the session is closed nothing is written. */
    private readonly session: { readonly closed: boolean },
    private readonly transport: BridgeTransport,
    private readonly options: BridgeOptions,
    /** Releases the session after its socket was closed for not reading. */
    private readonly release: () => void,
  ) {}

  get observer(): BridgeObserver | undefined {
    return this.options.observer;
  }

  write(frame: string | OutboundFrame): void {
    if (this.session.closed) return;
    const f = typeof frame === 'string' ? new OutboundFrame(frame) : frame;
    if (this.nextFrame === undefined) {
      this.nextFrame = f;
      queueFlush(this);
    } else {
      (this.moreFrames ??= []).push(f);
    }
  }

  /** A reply to a client's request: counted against the buffer limit before it is queued. */
  writeReply(text: string): void {
    const bytes = Buffer.byteLength(text);
    if (this.overBudget(bytes)) return;
    this.queuedReplyBytes += bytes;
    this.write(text);
  }

  /**
   * True (and the socket closed with 1013) when `bytes` more would put more than
   * BRIDGE_MAX_BUFFERED_BYTES between us and the client: checked before a reply is built and
   * again with its size. One reply alone may exceed the limit when nothing else waits.
   */
  overBudget(bytes: number): boolean {
    const waiting = this.transport.bufferedAmount() + this.queuedReplyBytes;
    if (waiting === 0 || waiting + bytes <= this.options.maxBufferedBytes) return false;
    this.closeNotReading();
    return true;
  }

  /**
   * Writes the queued frames to the socket now (once per loop turn, and before a close of our
   * own); returns how many. An outbox flushed meanwhile writes none.
   */
  flush(): number {
    const first = this.nextFrame;
    if (first === undefined) return 0;
    const more = this.moreFrames;
    this.nextFrame = this.moreFrames = undefined;
    this.queuedReplyBytes = 0;
    if (this.session.closed) return 0;
    if (this.transport.sendFrames) {
      // Asked only when the socket reports a backlog: the hot path touches no more objects.
      if (!this.transport.sendFrames(first, more)) this.closeIfNotReading();
    } else {
      if (this.closeIfNotReading()) return 0;
      this.transport.send(first.text);
      if (more) for (const f of more) this.transport.send(f.text);
    }
    return more ? more.length + 1 : 1;
  }

  private closeNotReading(): void {
    this.transport.close(CloseCode.TRY_AGAIN_LATER, 'client is not reading');
    this.release();
  }

  /** A client that does not read must not grow our memory: it reconnects and catches up. */
  private closeIfNotReading(): boolean {
    if (this.transport.bufferedAmount() <= this.options.maxBufferedBytes) return false;
    this.closeNotReading();
    return true;
  }
}
