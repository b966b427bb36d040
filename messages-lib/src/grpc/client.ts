import * as grpc from '@grpc/grpc-js';
import type { ConnectionState } from '../client.js';
import { TypedEmitter } from '../emitter.js';
import { ConnectWaiters } from '../connect-waiters.js';
import { ChatError, toChatError } from '../errors.js';
import { MemoryOutbox } from '../outbox.js';
import { OutboxKeeper } from '../outbox-keeper.js';
import { checkRoomName, Room } from '../room.js';
import { type BackoffOptions, historyPageSize, positive } from '../util.js';
import {
  callMetadata,
  type CallSite,
  type DownloadedFile,
  downloadFile,
  unaryCall,
  uploadFile,
} from './client-calls.js';
import type { GrpcChatClientOptions } from './client-options.js';
import { type ChatStub, type ChatStubCtor, chatStubCtor } from './proto.js';
import { type GrpcMethod, type LinkContext, NODE_HEADER, RoomLink } from './room-link.js';
import { grpcTarget } from './target.js';

export type { DownloadedFile } from './client-calls.js';
export type { GrpcChatClientOptions } from './client-options.js';

export interface GrpcClientEvents {
  /** `open`: connected and every joined room's stream is live; `reconnecting`: some room's is not. */
  state: ConnectionState;
  /** Errors nobody awaits: a rejoin refused, an auth refusal, storage failures. */
  error: ChatError;
  catchingUp: { room: string; missed: number };
  /** A room's Join stream is live, served by `node`. */
  streamJoined: { room: string; node: string };
  /** A room's Join stream ended (`code` the gRPC status). */
  disconnected: { room: string; code: number; reason: string };
  /** A room's Join stream is reopened in `delayMs`. */
  reconnecting: { room: string; attempt: number; delayMs: number; code: number; reason: string };
  /** A call's response named the node that served it (`sb-node` header). */
  served: { method: GrpcMethod; node: string };
}

/**
 * The Switchboard chat client over gRPC (`switchboard.chat.v1.Chat`), for Node: the same rooms,
 * ordering, outbox and errors as the WebSocket `ChatClient`. Each room is one Join stream,
 * reopened with `since` whenever it ends; Send, History and Upload are unary/client-streaming
 * calls balanced round robin over the target's addresses.
 */
export class GrpcChatClient extends TypedEmitter<GrpcClientEvents> {
  readonly user: string;
  /** The grpc-js target used. */
  readonly target: string;

  private readonly options: GrpcChatClientOptions;
  private readonly Stub: ChatStubCtor;
  private readonly channelOptions: grpc.ChannelOptions;
  private readonly credentials: grpc.ChannelCredentials;
  private readonly outbox: OutboxKeeper;
  private readonly random: () => number;
  private readonly backoff: BackoffOptions;
  private readonly drainJitterMs: number;
  private readonly stableMs: number;
  private readonly requestTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly fileTimeoutMs: number;
  private readonly chunkBytes: number;
  private readonly ctx: LinkContext;
  private readonly calls: CallSite = {
    stub: () => this.requireStub(),
    metadata: () => this.metadata(),
    servedBy: (method, headers) => this.servedBy(method, headers),
  };

  private stub: ChatStub | undefined;
  private _state: ConnectionState = 'closed';
  private running = false;
  private connected = false;
  /** Bumped by connect() after a stop and by close(): an older connect loop gives up. */
  private run = 0;
  private readonly links = new Map<string, RoomLink>();
  private readonly connectWaiters = new ConnectWaiters();
  private _node: string | undefined;

  constructor(options: GrpcChatClientOptions) {
    super();
    if (typeof options?.user !== 'string' || options.user.trim().length === 0) {
      throw new ChatError('CONFIG', 'user: required');
    }
    this.options = options;
    this.user = options.user;
    this.target = grpcTarget(options.target);
    const lb = options.loadBalancing ?? 'round_robin';
    if (lb !== 'round_robin' && lb !== 'pick_first') {
      throw new ChatError(
        'CONFIG',
        `loadBalancing: "round_robin" or "pick_first", got ${JSON.stringify(lb)}`,
      );
    }
    if (
      options.token !== undefined &&
      typeof options.token !== 'string' &&
      typeof options.token !== 'function'
    ) {
      throw new ChatError('CONFIG', 'token: a string or a function returning one');
    }
    this.random = options.random ?? Math.random;
    this.backoff = {
      baseMs: positive(options.reconnect?.baseMs, 250, 'reconnect.baseMs'),
      maxMs: positive(options.reconnect?.maxMs, 10_000, 'reconnect.maxMs'),
    };
    this.drainJitterMs = positive(options.reconnect?.drainJitterMs, 1_000, 'reconnect.drainJitterMs', true);
    this.stableMs = positive(options.stableMs, 5_000, 'stableMs');
    this.requestTimeoutMs = positive(options.requestTimeoutMs, 10_000, 'requestTimeoutMs');
    this.connectTimeoutMs = positive(options.connectTimeoutMs, 10_000, 'connectTimeoutMs');
    this.fileTimeoutMs = positive(options.fileTimeoutMs, 120_000, 'fileTimeoutMs');
    this.chunkBytes = positive(options.uploadChunkBytes, 65_536, 'uploadChunkBytes');
    const keepaliveMs = positive(options.keepaliveMs, 10_000, 'keepaliveMs');
    this.credentials = options.credentials ?? grpc.credentials.createInsecure();
    this.channelOptions = {
      'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ [lb]: {} }] }),
      // our service config is the one: no DNS TXT lookups for another
      'grpc.service_config_disable_resolution': 1,
      'grpc.keepalive_time_ms': keepaliveMs,
      'grpc.keepalive_timeout_ms': Math.min(keepaliveMs, 10_000),
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.initial_reconnect_backoff_ms': this.backoff.baseMs,
      'grpc.max_reconnect_backoff_ms': this.backoff.maxMs,
      ...options.channelOptions,
    };
    this.Stub = chatStubCtor(options.protoDir);
    this.outbox = new OutboxKeeper(options.outbox ?? new MemoryOutbox(), this.user, (err) =>
      this.reportError(err),
    );
    this.ctx = this.makeContext();
  }

  // --- public API -------------------------------------------------------------------------

  get state(): ConnectionState {
    return this._state;
  }

  /** The node that served the latest Join stream. */
  get node(): string | undefined {
    return this._node;
  }

  /** The node serving a room's Join stream. */
  nodeOf(room: string): string | undefined {
    return this.links.get(room)?.node;
  }

  room(name: string): Room | undefined {
    return this.links.get(name)?.room;
  }

  get joinedRooms(): Room[] {
    return [...this.links.values()].map((l) => l.room);
  }

  /**
   * Resolves once the channel is ready (a connection to at least one address); keeps waiting
   * meanwhile. Rejects on close(). After an auth refusal (state `closed`, an `AUTH` error),
   * calling it again resumes: rooms rejoin, the outbox is resent.
   */
  connect(): Promise<void> {
    if (this.running && this.connected) return Promise.resolve();
    const done = this.connectWaiters.wait();
    if (!this.running) {
      this.running = true;
      this.stub ??= new this.Stub(this.target, this.credentials, this.channelOptions);
      this.outbox.preload();
      this.setState('connecting');
      void this.waitReady(++this.run).catch((err: unknown) => this.reportError(toChatError(err)));
    }
    return done;
  }

  /** Joins a room: a Join stream (with `since` on rejoins). Same contract as `ChatClient.join`. */
  async join(name: string, options: { since?: number } = {}): Promise<Room> {
    checkRoomName(name);
    if (!this.running) throw new ChatError('CLOSED', 'not connected: call connect() first');
    await this.outbox.load();
    if (!this.running) throw new ChatError('CLOSED', 'the client was closed');
    let link = this.links.get(name);
    if (!link) {
      link = new RoomLink(this.ctx, name);
      link.room = new Room(link, link, name, { ...options, stored: this.outbox.take(name) });
      this.links.set(name, link);
      if (this.connected) link.start();
    }
    await link.room.ready;
    return link.room;
  }

  /** Closes for good: streams cancelled, rooms stop, pending sends reject with CLOSED (kept in the storage). */
  async close(): Promise<void> {
    this.running = false;
    this.connected = false;
    this.run++;
    const err = new ChatError('CLOSED', 'the client was closed');
    for (const link of [...this.links.values()]) {
      link.dispose();
      link.room.stop(err);
    }
    this.links.clear();
    this.connectWaiters.rejectAll(err);
    this.setState('closed');
    this.stub?.close();
    this.stub = undefined;
  }

  /** Downloads a stored file (`Download`), bounded by `fileTimeoutMs`. */
  download(id: string): Promise<DownloadedFile> {
    return downloadFile(this.calls, id, this.fileTimeoutMs);
  }

  // --- connection -------------------------------------------------------------------------

  private async waitReady(run: number): Promise<void> {
    while (run === this.run && this.running) {
      const stub = this.stub;
      if (!stub) return;
      const err = await new Promise<Error | undefined>((resolve) =>
        stub.waitForReady(Date.now() + this.connectTimeoutMs, (e) => resolve(e ?? undefined)),
      );
      if (run !== this.run || !this.running) return;
      if (!err) break;
      // the channel retries by itself (with backoff); keep waiting, say so
      this.reportError(
        new ChatError(
          'DISCONNECTED',
          `no server ready at ${this.target} within ${this.connectTimeoutMs} ms`,
          {
            code: grpc.status.UNAVAILABLE,
            reason: 'UNAVAILABLE',
          },
        ),
      );
    }
    this.connected = true;
    this.connectWaiters.resolveAll();
    for (const link of [...this.links.values()]) link.start();
    this.updateState();
  }

  /** A call was refused for its token: like the WebSocket client after close 1008. */
  private authFailed(err: ChatError): void {
    if (!this.running) return;
    this.running = false;
    this.connected = false;
    this.run++;
    for (const link of [...this.links.values()]) link.down();
    this.setState('closed');
    this.reportError(err);
    this.connectWaiters.rejectAll(err);
  }

  private updateState(): void {
    if (!this.running) return this.setState('closed');
    if (!this.connected) return this.setState('connecting');
    const down = [...this.links.values()].some((l) => l.reconnectingNow);
    this.setState(down ? 'reconnecting' : 'open');
  }

  // --- calls ------------------------------------------------------------------------------

  private requireStub(): ChatStub {
    if (!this.running || !this.stub)
      throw new ChatError('DISCONNECTED', 'not connected: call connect() first');
    return this.stub;
  }

  private metadata(): Promise<grpc.Metadata> {
    return callMetadata(this.options.token);
  }

  private servedBy(method: GrpcMethod, headers: grpc.Metadata): void {
    const node = headers.get(NODE_HEADER)[0];
    if (typeof node === 'string') this.emit('served', { method, node });
  }

  // --- plumbing ---------------------------------------------------------------------------

  private makeContext(): LinkContext {
    return {
      user: this.user,
      settings: {
        gapFillMs: 300, // unused: the Join stream is gap-free
        historyPageSize: historyPageSize(this.options.historyPageSize),
        maxMessages: positive(this.options.maxMessages, 1_000, 'maxMessages'),
        maxBuffered: positive(this.options.maxBuffered, 1_000, 'maxBuffered'),
        retry: this.backoff,
        random: this.random,
      },
      outbox: this.outbox,
      backoff: this.backoff,
      drainJitterMs: this.drainJitterMs,
      stableMs: this.stableMs,
      replayWaitMs: this.requestTimeoutMs,
      random: this.random,
      connected: () => this.running && this.connected,
      stub: () => this.stub,
      metadata: () => this.metadata(),
      unary: (method, request, what) => unaryCall(this.calls, method, request, what, this.requestTimeoutMs),
      upload: (data, name, contentType) =>
        uploadFile(this.calls, data, name, contentType, this.fileTimeoutMs, this.chunkBytes),
      authFailed: (err) => this.authFailed(err),
      served: (method, node) => this.emit('served', { method, node }),
      streamJoined: (room, node) => {
        this._node = node;
        this.emit('streamJoined', { room, node });
      },
      disconnected: (room, code, reason) => this.emit('disconnected', { room, code, reason }),
      reconnecting: (room, attempt, delayMs, code, reason) =>
        this.emit('reconnecting', { room, attempt, delayMs, code, reason }),
      catchingUp: (room, missed) => this.emit('catchingUp', { room, missed }),
      reportError: (err) => this.reportError(err),
      forget: (link) => {
        if (this.links.get(link.name) === link) this.links.delete(link.name);
        this.updateState();
      },
      changed: () => this.updateState(),
    };
  }

  private reportError(err: ChatError): void {
    this.emit('error', err);
  }

  private setState(state: ConnectionState): void {
    if (this._state === state) return;
    this._state = state;
    this.emit('state', state);
  }
}
