import { Metadata, type ServerWritableStream, status } from '@grpc/grpc-js';

/**
 * Flow control for a server stream (Subscribe, chat Join): messages go to `call.write()` while
 * it accepts them; once it returns false (HTTP/2 flow control: the client is not reading) they
 * wait in a queue until 'drain'. The queue holds at most `maxQueued` messages: one more and the
 * stream ends with RESOURCE_EXHAUSTED, so a client that stops reading costs at most
 * `maxQueued` messages plus grpc-js's own writable buffer (16 messages) of server memory.
 * The client reconnects (chat: Join with `since`) and catches up from the store.
 */
export class BoundedStreamWriter<T> {
  private readonly queue: T[] = [];
  private blocked = false;
  private done = false;
  /** Most messages ever queued at once (for tests and metrics). */
  highWater = 0;

  constructor(
    private readonly call: ServerWritableStream<unknown, T>,
    private readonly maxQueued: number,
    private readonly onEnd: () => void,
  ) {
    call.on('drain', () => this.flush());
    call.on('cancelled', () => this.finish());
    call.on('close', () => this.finish());
  }

  get ended(): boolean {
    return this.done;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Sends or queues; false once the stream has ended (also when this write ended it). */
  write(message: T): boolean {
    if (this.done) return false;
    if (this.blocked) {
      if (this.queue.length >= this.maxQueued) {
        this.fail(
          status.RESOURCE_EXHAUSTED,
          `the client is not reading: more than ${this.maxQueued} messages waiting; reconnect and catch up`,
        );
        return false;
      }
      this.queue.push(message);
      this.highWater = Math.max(this.highWater, this.queue.length);
      return true;
    }
    if (!this.call.write(message)) this.blocked = true;
    return true;
  }

  /** Ends the stream with OK once everything queued is written. */
  end(): void {
    if (this.done) return;
    this.finish();
    if (this.queue.length === 0) return void this.call.end();
    // queued messages still go out, in order, before the status
    const rest = this.queue.splice(0);
    for (const m of rest) this.call.write(m);
    this.call.end();
  }

  /** Ends the stream with an error status (the queue is dropped: the client must catch up). */
  fail(code: status, details: string, trailers: Metadata = new Metadata()): void {
    if (this.done) return;
    this.queue.length = 0;
    this.finish();
    this.call.emit('error', { code, details, metadata: trailers });
  }

  private flush(): void {
    this.blocked = false;
    while (!this.done && !this.blocked && this.queue.length > 0) {
      if (!this.call.write(this.queue.shift()!)) this.blocked = true;
    }
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.onEnd();
  }
}
