import { CONTROL_ADDRESS } from '@switchboard/protocol';
import { WebSocket } from 'ws';

/** A frame the bridge sent, parsed (every server frame is a JSON object). */
export interface Frame {
  type: string;
  address?: string;
  body?: unknown;
  headers?: Record<string, string>;
  replyAddress?: string;
  failureCode?: number;
  failureType?: string;
  message?: string;
  /** In a refusal on the raw endpoint: the refused frame's address and replyAddress, as sent. */
  refused?: { address?: string; replyAddress?: string };
  [key: string]: unknown;
}

/**
 * A refused frame's `{type:"err", body}`, as opposed to a reply failure (addressed to the
 * replyAddress, with `failureType`, never a body).
 */
export function isRefusal(f: Frame): boolean {
  return f.type === 'err' && typeof f.body === 'string';
}

export interface CloseInfo {
  code: number;
  reason: string;
}

export interface ConnectOptions {
  /** `?token=` query parameter. */
  token?: string;
  /** An `Origin` header, as a browser would send. */
  origin?: string;
  /** Bound on the WebSocket handshake. */
  timeoutMs?: number;
  /** The local address to connect from (e.g. another 127.x address than other clients'). */
  localAddress?: string;
  /** Extra handshake headers (e.g. a forged Host). */
  headers?: Record<string, string>;
}

export const DEFAULT_WAIT_MS = 5_000;

let replySeq = 0;

/**
 * A raw WebSocket client of `/eventbus/websocket`. Every frame the server sends is kept in arrival
 * order; `next` hands out the first frame not yet taken that matches a predicate (waiting for it,
 * bounded), so frames that arrive out of the order a test asks for them are never lost.
 */
export class WsClient {
  readonly frames: Frame[] = [];
  private readonly taken = new Set<number>();
  private readonly waiters = new Set<() => void>();
  private closeInfo: CloseInfo | undefined;
  readonly closed: Promise<CloseInfo>;

  private constructor(readonly ws: WebSocket) {
    let resolveClosed!: (c: CloseInfo) => void;
    this.closed = new Promise((r) => (resolveClosed = r));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const text = data.toString();
      let frame: Frame;
      try {
        frame = JSON.parse(text) as Frame;
      } catch {
        frame = { type: '<non-json>', body: isBinary ? `<${data.length} bytes>` : text };
      }
      this.frames.push(frame);
      this.notify();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closeInfo = { code, reason: reason.toString() };
      resolveClosed(this.closeInfo);
      this.notify();
    });
    // Errors (e.g. a reset after the server closed) end in 'close' too; keep them from throwing.
    ws.on('error', () => {});
  }

  /** Opens a socket to `<httpUrl>/eventbus/websocket` and resolves once it is open. */
  static connect(httpUrl: string, opts: ConnectOptions = {}): Promise<WsClient> {
    const url = new URL('/eventbus/websocket', httpUrl.replace(/^http/, 'ws'));
    if (opts.token !== undefined) url.searchParams.set('token', opts.token);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const ws = new WebSocket(url, {
      handshakeTimeout: timeoutMs,
      ...(opts.origin !== undefined ? { origin: opts.origin } : {}),
      ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}),
      ...(opts.headers !== undefined ? { headers: opts.headers } : {}),
    });
    const client = new WsClient(ws);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`WebSocket to ${url.href} did not open within ${timeoutMs} ms`));
      }, timeoutMs);
      ws.once('open', () => {
        clearTimeout(timer);
        resolve(client);
      });
      ws.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /** Connects and waits for the `hello` control frame: resolves with it. */
  static async open(
    httpUrl: string,
    opts: ConnectOptions = {},
  ): Promise<{ client: WsClient; hello: { session: string; node: string } }> {
    const client = await WsClient.connect(httpUrl, opts);
    try {
      const hello = await client.hello();
      return { client, hello };
    } catch (err) {
      client.terminate();
      throw err;
    }
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** The close code and reason once the socket closed, else undefined. */
  get closedWith(): CloseInfo | undefined {
    return this.closeInfo;
  }

  sendRaw(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  send(frame: unknown): void {
    this.ws.send(JSON.stringify(frame));
  }

  /**
   * The first frame not yet taken that matches, waiting up to `timeoutMs`. Rejects on timeout, or
   * when the socket closes before such a frame arrived.
   */
  next(pred: (f: Frame) => boolean, what = 'a matching frame', timeoutMs = DEFAULT_WAIT_MS): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        for (let i = 0; i < this.frames.length; i++) {
          if (this.taken.has(i)) continue;
          const f = this.frames[i]!;
          if (pred(f)) {
            this.taken.add(i);
            done();
            resolve(f);
            return true;
          }
        }
        if (this.closeInfo) {
          done();
          reject(
            new Error(
              `socket closed (${this.closeInfo.code} ${this.closeInfo.reason}) before ${what}; frames: ${this.describe()}`,
            ),
          );
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${what} within ${timeoutMs} ms; frames: ${this.describe()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(listener);
      };
      const listener = (): void => void check();
      if (!check()) this.waiters.add(listener);
    });
  }

  /**
   * The next `{type:"err", body}` frame (a refused frame, which may name the frame in `refused`;
   * a reply failure has no body), optionally with the given body.
   */
  nextError(body?: string, timeoutMs = DEFAULT_WAIT_MS): Promise<Frame> {
    return this.next(
      (f) => isRefusal(f) && (body === undefined || f.body === body),
      `err frame ${body ?? ''}`,
      timeoutMs,
    );
  }

  /** The next `rec` frame for `address`. */
  nextRec(address: string, timeoutMs = DEFAULT_WAIT_MS): Promise<Frame> {
    return this.next((f) => f.type === 'rec' && f.address === address, `rec on ${address}`, timeoutMs);
  }

  hello(timeoutMs = DEFAULT_WAIT_MS): Promise<{ session: string; node: string }> {
    return this.next(
      (f) =>
        f.type === 'rec' &&
        f.address === CONTROL_ADDRESS &&
        (f.body as { kind?: string } | undefined)?.kind === 'hello',
      'hello control frame',
      timeoutMs,
    ).then((f) => f.body as { session: string; node: string });
  }

  /**
   * Sends a ping and waits for its pong. Frames are handled one at a time in order, so once the
   * pong is here every frame sent before the ping has been handled.
   */
  async ping(timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    this.send({ type: 'ping' });
    await this.next((f) => f.type === 'pong', 'pong', timeoutMs);
  }

  /** Registers and waits until the server has handled the registration (ping barrier). */
  async register(address: string, headers?: Record<string, string>): Promise<void> {
    this.send({ type: 'register', address, ...(headers ? { headers } : {}) });
    await this.ping();
  }

  async unregister(address: string): Promise<void> {
    this.send({ type: 'unregister', address });
    await this.ping();
  }

  /**
   * `send` with a fresh replyAddress; resolves with the answer: a `rec` frame (the reply) or a
   * reply-failure `err` frame addressed to that replyAddress.
   */
  request(
    address: string,
    body: unknown,
    headers?: Record<string, string>,
    timeoutMs = DEFAULT_WAIT_MS,
  ): Promise<Frame> {
    const replyAddress = `r.${process.pid}.${++replySeq}`;
    this.send({ type: 'send', address, body, replyAddress, ...(headers ? { headers } : {}) });
    return this.next((f) => f.address === replyAddress, `the answer to ${address}`, timeoutMs);
  }

  /** Like `request`, but expects a reply and resolves with its body. */
  async call<T = unknown>(address: string, body: unknown, headers?: Record<string, string>): Promise<T> {
    const f = await this.request(address, body, headers);
    if (f.type !== 'rec') throw new Error(`${address} failed: ${JSON.stringify(f)}`);
    return f.body as T;
  }

  /** Every frame received so far (taken or not) that matches. */
  all(pred: (f: Frame) => boolean): Frame[] {
    return this.frames.filter(pred);
  }

  /** Resolves with the close code and reason, waiting up to `timeoutMs`. */
  waitClose(timeoutMs = DEFAULT_WAIT_MS): Promise<CloseInfo> {
    if (this.closeInfo) return Promise.resolve(this.closeInfo);
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      this.closed.finally(() => clearTimeout(timer)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`socket not closed within ${timeoutMs} ms; frames: ${this.describe()}`)),
          timeoutMs,
        );
      }),
    ]);
  }

  /** Closes (normal closure) and waits, bounded, for the close to complete. */
  async close(timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    if (this.closeInfo) return;
    this.ws.close(1000);
    await this.waitClose(timeoutMs).catch(() => this.ws.terminate());
  }

  terminate(): void {
    this.ws.terminate();
  }

  /** Stops reading from the network (the server's queue fills up), and reads again. */
  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  private describe(): string {
    const text = this.frames
      .slice(-8)
      .map((f) => JSON.stringify(f).slice(0, 200))
      .join(' | ');
    return `${this.frames.length} total, last: ${text || '-'}`;
  }
}

/** Closes every client, bounded; for after/afterEach hooks. */
export async function closeAll(clients: Iterable<WsClient>): Promise<void> {
  await Promise.allSettled([...clients].map((c) => c.close(2_000)));
}
