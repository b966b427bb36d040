import net from 'node:net';
import type { NodeTransport, PeerAddress, TransportHandlers, WireMessage } from '../transport.js';
import {
  encodeError,
  encodeHello,
  encodeMessage,
  type Frame,
  FrameDecoder,
  FrameError,
  FrameKind,
  PING_FRAME,
  PONG_FRAME,
} from './frames.js';

export interface TcpTransportOptions {
  nodeId: string;
  /** Interface the node-to-node server binds to. */
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Host other nodes dial; defaults to `host`. */
  publicHost?: string;
  maxFrameBytes: number;
  /** Link liveness: ping every interval, drop the link after two silent intervals. */
  pingIntervalMs?: number;
  /** Upper bound of frames queued for a peer while its connection opens or drains. */
  maxQueuedBytes?: number;
  /** A peer must say hello within this time, or its connection is closed. */
  helloTimeoutMs?: number;
  connectTimeoutMs?: number;
  logger?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

interface Outbound {
  peer: PeerAddress;
  socket: net.Socket;
  open: boolean;
  /** Frames written before the connection opened, with their messages for rerouting. */
  queue: { frame: Buffer; message: WireMessage }[];
  queuedBytes: number;
  lastHeard: number;
  corked: boolean;
}

const noLog = { warn: () => {}, info: () => {} };

/**
 * Direct TCP links between nodes: one outbound connection per peer (writes queue while it opens),
 * length-prefixed frames, writes corked per tick so a burst leaves in few syscalls.
 */
export class TcpTransport implements NodeTransport {
  private readonly opts: Required<Omit<TcpTransportOptions, 'publicHost' | 'logger'>> & {
    publicHost: string;
  };
  private readonly log: NonNullable<TcpTransportOptions['logger']>;
  private server: net.Server | undefined;
  private handlers: TransportHandlers | undefined;
  private readonly outbound = new Map<string, Outbound>();
  private readonly inbound = new Set<net.Socket>();
  private pingTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: TcpTransportOptions) {
    this.opts = {
      nodeId: options.nodeId,
      host: options.host,
      port: options.port,
      publicHost: options.publicHost ?? options.host,
      maxFrameBytes: options.maxFrameBytes,
      pingIntervalMs: options.pingIntervalMs ?? 20_000,
      maxQueuedBytes: options.maxQueuedBytes ?? 64 * 1024 * 1024,
      helloTimeoutMs: options.helloTimeoutMs ?? 5_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
    };
    this.log = options.logger ?? noLog;
  }

  async start(handlers: TransportHandlers): Promise<{ host: string; port: number }> {
    this.handlers = handlers;
    const server = net.createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.warn({ err: String(err) }, 'bus server error'));
    this.pingTimer = setInterval(() => this.pingPeers(), this.opts.pingIntervalMs);
    this.pingTimer.unref();
    const address = server.address() as net.AddressInfo;
    return { host: this.opts.publicHost, port: address.port };
  }

  deliver(peer: PeerAddress, message: WireMessage): void {
    if (this.closed) {
      this.handlers?.onUndeliverable(peer, message, 'transport closed');
      return;
    }
    const frame = encodeMessage(message);
    let link = this.outbound.get(peer.nodeId);
    if (link && (link.peer.host !== peer.host || link.peer.port !== peer.port)) {
      // The node re-registered elsewhere: the old link points at nothing useful.
      this.drop(link, 'peer address changed');
      link = undefined;
    }
    if (!link) link = this.connect(peer);
    if (!link.open || link.socket.writableLength > this.opts.maxQueuedBytes) {
      if (link.queuedBytes + frame.length > this.opts.maxQueuedBytes) {
        this.handlers?.onUndeliverable(peer, message, 'queue for the peer is full');
        return;
      }
      if (!link.open) {
        link.queue.push({ frame, message });
        link.queuedBytes += frame.length;
        return;
      }
      // Open but its socket buffer is over the bound: the peer is not reading. Keep memory bounded.
      this.handlers?.onUndeliverable(peer, message, 'peer is not reading');
      return;
    }
    this.write(link, frame);
  }

  forget(nodeId: string): void {
    const link = this.outbound.get(nodeId);
    if (link) this.drop(link, 'node left the cluster');
  }

  probe(peer: PeerAddress): Promise<'refused' | 'answered' | 'unknown'> {
    return new Promise((resolve) => {
      // A bare connect, closed at once: the peer's accept path rejects it after its hello timeout.
      const socket = net.connect({ host: peer.host, port: peer.port });
      const timer = setTimeout(() => done('unknown'), this.opts.connectTimeoutMs);
      timer.unref();
      const done = (verdict: 'refused' | 'answered' | 'unknown'): void => {
        clearTimeout(timer);
        socket.destroy();
        resolve(verdict);
      };
      socket.once('connect', () => done('answered'));
      socket.once('error', (err: NodeJS.ErrnoException) =>
        done(err.code === 'ECONNREFUSED' ? 'refused' : 'unknown'),
      );
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.pingTimer) clearInterval(this.pingTimer);
    for (const link of [...this.outbound.values()]) {
      // Let written frames leave before closing: end() flushes, destroy() would not.
      link.socket.end();
      this.outbound.delete(link.peer.nodeId);
    }
    for (const socket of this.inbound) socket.destroy();
    this.inbound.clear();
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // --- outbound ---------------------------------------------------------------------------

  private connect(peer: PeerAddress): Outbound {
    const socket = net.connect({ host: peer.host, port: peer.port });
    socket.setNoDelay(true);
    const link: Outbound = {
      peer,
      socket,
      open: false,
      queue: [],
      queuedBytes: 0,
      lastHeard: Date.now(),
      corked: false,
    };
    this.outbound.set(peer.nodeId, link);
    const connectTimer = setTimeout(() => {
      socket.destroy(new Error(`connect timed out after ${this.opts.connectTimeoutMs} ms`));
    }, this.opts.connectTimeoutMs);
    connectTimer.unref();
    socket.once('connect', () => {
      clearTimeout(connectTimer);
      link.open = true;
      link.lastHeard = Date.now();
      socket.cork();
      socket.write(encodeHello(this.opts.nodeId));
      for (const { frame } of link.queue) socket.write(frame);
      socket.uncork();
      link.queue = [];
      link.queuedBytes = 0;
    });
    const decoder = new FrameDecoder(this.opts.maxFrameBytes);
    socket.on('data', (chunk: Buffer) => {
      link.lastHeard = Date.now();
      try {
        for (const frame of decoder.push(chunk)) {
          if (frame.kind === FrameKind.ERROR) {
            this.log.warn({ peer: peer.nodeId, error: frame.text }, 'peer refused our link');
          }
        }
      } catch (err) {
        socket.destroy(err as Error);
      }
    });
    socket.on('error', () => {}); // 'close' follows and carries the consequences
    socket.once('close', () => {
      clearTimeout(connectTimer);
      if (this.outbound.get(peer.nodeId) === link) this.outbound.delete(peer.nodeId);
      const queued = link.queue;
      link.queue = [];
      link.queuedBytes = 0;
      if (!link.open) {
        for (const { message } of queued) {
          this.handlers?.onUndeliverable(peer, message, 'could not connect to the node');
        }
      } else if (!this.closed) {
        this.handlers?.onPeerLost(peer.nodeId, `link to node ${peer.nodeId} closed`);
      }
      link.open = false;
    });
    return link;
  }

  private write(link: Outbound, frame: Buffer): void {
    if (!link.corked) {
      link.corked = true;
      link.socket.cork();
      process.nextTick(() => {
        link.corked = false;
        link.socket.uncork();
      });
    }
    link.socket.write(frame);
  }

  private drop(link: Outbound, reason: string): void {
    if (this.outbound.get(link.peer.nodeId) === link) this.outbound.delete(link.peer.nodeId);
    link.socket.destroy(new Error(reason));
  }

  private pingPeers(): void {
    const now = Date.now();
    for (const link of this.outbound.values()) {
      if (!link.open) continue;
      if (now - link.lastHeard > 2 * this.opts.pingIntervalMs) {
        this.drop(link, 'peer stopped answering pings');
      } else {
        link.socket.write(PING_FRAME);
      }
    }
  }

  // --- inbound ----------------------------------------------------------------------------

  private accept(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.inbound.add(socket);
    socket.setNoDelay(true);
    const decoder = new FrameDecoder(this.opts.maxFrameBytes);
    let peerId: string | undefined;
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const helloTimer = setTimeout(() => {
      this.reject(socket, remote, `no hello within ${this.opts.helloTimeoutMs} ms`);
    }, this.opts.helloTimeoutMs);
    helloTimer.unref();
    socket.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        clearTimeout(helloTimer);
        this.reject(socket, remote, err instanceof FrameError ? err.message : String(err));
        return;
      }
      for (const frame of frames) {
        if (peerId === undefined) {
          if (frame.kind !== FrameKind.HELLO) {
            clearTimeout(helloTimer);
            this.reject(socket, remote, 'the first frame must be a hello');
            return;
          }
          clearTimeout(helloTimer);
          peerId = frame.hello.nodeId;
          continue;
        }
        switch (frame.kind) {
          case FrameKind.MESSAGE:
            this.handlers?.onMessage(peerId, frame.message);
            break;
          case FrameKind.PING:
            socket.write(PONG_FRAME);
            break;
          case FrameKind.HELLO:
            this.reject(socket, remote, 'a second hello on one link');
            return;
          default:
            break;
        }
      }
    });
    socket.on('error', () => {});
    socket.once('close', () => {
      clearTimeout(helloTimer);
      this.inbound.delete(socket);
    });
  }

  private reject(socket: net.Socket, remote: string, reason: string): void {
    this.log.warn({ remote, reason }, 'rejected a connection on the bus port');
    if (!socket.destroyed) socket.end(encodeError(`switchboard bus protocol error: ${reason}\n`));
    // Whatever the peer sends after the error is not read.
    socket.removeAllListeners('data');
    setTimeout(() => socket.destroy(), 1_000).unref();
  }
}
