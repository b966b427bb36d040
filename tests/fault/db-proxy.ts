/**
 * A TCP proxy on 127.0.0.1 between the nodes and the database that can make the database slow or
 * stall it: what a MongoDB election, a cold cache or a stalled disk looks like from the nodes.
 * In this process (Node's net), bytes kept in order per connection and direction.
 *
 * - `setLatency(ms)`: every chunk towards the database is held `ms` before it is passed on, so
 *   every round trip (commands, heartbeats, handshakes) takes `ms` longer.
 * - `stall()` / `resume()`: nothing is passed on in either direction meanwhile (connections are
 *   accepted and kept, as a frozen server's would be); on resume what was held goes on in order.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

interface Held {
  at: number;
  chunk: Buffer;
}

/** One direction of one connection: chunks held until their time, then written in order. */
class Lane {
  private readonly held: Held[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly to: Socket,
    private readonly proxy: DbProxy,
    private readonly delayed: boolean,
  ) {}

  push(chunk: Buffer): void {
    this.held.push({ at: Date.now() + (this.delayed ? this.proxy.latencyMs : 0), chunk });
    this.pump();
  }

  pump(): void {
    if (this.timer !== undefined) return;
    while (this.held.length > 0 && !this.proxy.stalled) {
      const wait = this.held[0]!.at - Date.now();
      if (wait > 0) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.pump();
        }, wait);
        return;
      }
      if (!this.to.destroyed) this.to.write(this.held.shift()!.chunk);
      else this.held.length = 0;
    }
  }

  clear(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.held.length = 0;
  }
}

export class DbProxy {
  latencyMs = 0;
  stalled = false;
  private readonly lanes = new Set<Lane>();
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** A proxy on a free port of 127.0.0.1 forwarding to 127.0.0.1:targetPort. */
  static async start(targetPort: number): Promise<DbProxy> {
    const ready: { proxy?: DbProxy } = {};
    const server = createServer((client) => {
      if (ready.proxy) ready.proxy.accept(client, targetPort);
      else client.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy: no port');
    ready.proxy = new DbProxy(server, address.port);
    return ready.proxy;
  }

  /** mongodb://127.0.0.1:<port>/ */
  get url(): string {
    return `mongodb://127.0.0.1:${this.port}/`;
  }

  setLatency(ms: number): void {
    this.latencyMs = ms;
  }

  stall(): void {
    this.stalled = true;
  }

  resume(): void {
    this.stalled = false;
    for (const lane of this.lanes) lane.pump();
  }

  /** Open connections now (each node's driver keeps a pool and a monitor). */
  connections(): number {
    return this.sockets.size / 2;
  }

  async stop(): Promise<void> {
    for (const lane of this.lanes) lane.clear();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket, targetPort: number): void {
    const server = connect({ host: '127.0.0.1', port: targetPort });
    const up = new Lane(server, this, true);
    const down = new Lane(client, this, false);
    this.lanes.add(up).add(down);
    this.sockets.add(client).add(server);
    client.on('data', (chunk) => up.push(chunk));
    server.on('data', (chunk) => down.push(chunk));
    const close = (): void => {
      up.clear();
      down.clear();
      this.lanes.delete(up);
      this.lanes.delete(down);
      this.sockets.delete(client);
      this.sockets.delete(server);
      client.destroy();
      server.destroy();
    };
    for (const s of [client, server]) {
      s.on('error', close);
      s.on('close', close);
    }
  }
}
