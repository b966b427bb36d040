import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { ConnectionState, TokenSource } from '../client.js';
import { TypedEmitter } from '../emitter.js';
import { ChatError, toChatError } from '../errors.js';
import { MemoryOutbox, type OutboxStorage } from '../outbox.js';
import { OutboxKeeper } from '../outbox-keeper.js';
import { checkRoomName, Room } from '../room.js';
import type { FileRef } from '../types.js';
import { type BackoffOptions, positive } from '../util.js';
import {
  type ChatStub,
  type ChatStubCtor,
  chatStubCtor,
  type DownloadChunk,
  type FileRefMsg,
  type UploadChunk,
} from './proto.js';
import { type GrpcMethod, type LinkContext, NODE_HEADER, RoomLink } from './room-link.js';
import { chatErrorOf, statusName } from './status.js';
import { grpcTarget } from './target.js';

export interface GrpcChatClientOptions {
  /**
   * The server's gRPC endpoint (`GRPC_PORT`): `dns:///host:port` (every address the name resolves
   * to, balanced round robin), `host:port` (the same), a list of IP addresses
   * `['127.0.0.1:50051', '127.0.0.1:50052']`, grpc-js's `ipv4:a:p,b:p` / `ipv6:[a]:p,…`, or `unix:/path`.
   */
  target: string | string[];
  /** The user name (open mode); in token mode the server takes the user from the token. */
  user: string;
  /** A JWT, or a function returning one (called before every call). Sent as `authorization: Bearer`. */
  token?: TokenSource;
  /** Where unacked messages are kept; default in memory. */
  outbox?: OutboxStorage;
  /**
   * Reopening a room's Join stream: `random(0, min(maxMs, baseMs·2^attempt))`; after a drain
   * (UNAVAILABLE with the `reconnect` trailer) `random(0, drainJitterMs)`.
   */
  reconnect?: { baseMs?: number; maxMs?: number; drainJitterMs?: number };
  /** A Join stream that lived this long resets the backoff. Default 5 000. */
  stableMs?: number;
  /** Deadline of Send and History calls. Default 10 000. */
  requestTimeoutMs?: number;
  /** How long connect() waits for a ready channel per round (it keeps waiting). Default 10 000. */
  connectTimeoutMs?: number;
  /** Deadline of an Upload or Download. Default 120 000. */
  fileTimeoutMs?: number;
  /** Bytes per Upload chunk. Default 65 536. */
  uploadChunkBytes?: number;
  /** `limit` of history requests (≤ 500). Default 500. */
  historyPageSize?: number;
  /** Messages kept per room in `room.messages`. Default 1 000. */
  maxMessages?: number;
  /** Out-of-order messages buffered per room. Default 1 000. */
  maxBuffered?: number;
  /**
   * HTTP/2 keepalive ping interval, so a dead link is noticed. Default 10 000; keep it ≥ 5 000
   * (the server's minimum, or it answers GOAWAY too_many_pings).
   */
  keepaliveMs?: number;
  /** `round_robin` (default): calls spread over every resolved address; `pick_first`: one at a time. */
  loadBalancing?: 'round_robin' | 'pick_first';
  /** Default insecure (plaintext HTTP/2, as the server serves it; TLS belongs to the ingress). */
  credentials?: grpc.ChannelCredentials;
  /** Extra grpc-js channel options (they win over the client's). */
  channelOptions?: grpc.ChannelOptions;
  /** The directory holding `switchboard/chat/v1/chat.proto`; default the package's or the repository's `proto/`. */
  protoDir?: string;
  /** Random source in [0, 1) for jitter (tests). Default Math.random. */
  random?: () => number;
}

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

export interface DownloadedFile {
  file: FileRef;
  data: Buffer;
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

  private stub: ChatStub | undefined;
  private _state: ConnectionState = 'closed';
  private running = false;
  private connected = false;
  /** Bumped by connect() after a stop and by close(): an older connect loop gives up. */
  private run = 0;
  private readonly links = new Map<string, RoomLink>();
  private connectWaiters: { resolve: () => void; reject: (err: ChatError) => void }[] = [];
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
    const done = new Promise<void>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
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
      link.room = new Room(link, name, { ...options, stored: this.outbox.take(name) });
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
    this.rejectConnect(err);
    this.setState('closed');
    this.stub?.close();
    this.stub = undefined;
  }

  /** Downloads a stored file (`Download`), bounded by `fileTimeoutMs`. */
  async download(id: string): Promise<DownloadedFile> {
    const stub = this.requireStub();
    const md = await this.metadata();
    const call = stub.download({ id }, md, { deadline: Date.now() + this.fileTimeoutMs });
    call.on('metadata', (h: grpc.Metadata) => this.servedBy('download', h));
    let file: FileRef | undefined;
    const parts: Buffer[] = [];
    try {
      for await (const chunk of call as AsyncIterable<DownloadChunk>) {
        if (chunk.chunk === 'info' && chunk.info) file = fileRef(chunk.info);
        else if (chunk.chunk === 'data' && chunk.data) parts.push(Buffer.from(chunk.data));
      }
    } catch (err) {
      throw chatErrorOf(err as grpc.ServiceError, `downloading ${id}`);
    }
    if (!file) throw new ChatError('ERROR', `downloading ${id}: the server sent no file info`);
    return { file, data: Buffer.concat(parts) };
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
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.resolve();
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
    this.rejectConnect(err);
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

  private async metadata(): Promise<grpc.Metadata> {
    const md = new grpc.Metadata();
    let token: string | undefined;
    try {
      token = typeof this.options.token === 'function' ? await this.options.token() : this.options.token;
    } catch (err) {
      throw new ChatError('AUTH', `the token function failed: ${String(err)}`, { cause: err });
    }
    if (token) md.set('authorization', `Bearer ${token}`);
    return md;
  }

  private servedBy(method: GrpcMethod, headers: grpc.Metadata): void {
    const node = headers.get(NODE_HEADER)[0];
    if (typeof node === 'string') this.emit('served', { method, node });
  }

  private async unary<T>(method: 'send' | 'history', request: object, what: string): Promise<T> {
    const stub = this.requireStub();
    const md = await this.metadata();
    return new Promise<T>((resolve, reject) => {
      const fn = stub[method].bind(stub) as (
        req: object,
        md: grpc.Metadata,
        opts: grpc.CallOptions,
        cb: grpc.requestCallback<T>,
      ) => grpc.ClientUnaryCall;
      const call = fn(request, md, { deadline: Date.now() + this.requestTimeoutMs }, (err, value) => {
        if (err) reject(chatErrorOf(err, what));
        else resolve(value as T);
      });
      call.on('metadata', (h: grpc.Metadata) => this.servedBy(method, h));
    });
  }

  private async upload(
    data: Blob | ArrayBuffer | ArrayBufferView,
    name: string,
    contentType?: string,
  ): Promise<FileRef> {
    if (typeof name !== 'string' || name.length === 0) throw new ChatError('INVALID', 'file name: required');
    const bytes = await toBytes(data);
    const stub = this.requireStub();
    const md = await this.metadata();
    const type = contentType ?? (typeof Blob !== 'undefined' && data instanceof Blob ? data.type : '');
    let call!: grpc.ClientWritableStream<UploadChunk>;
    const answer = new Promise<FileRefMsg>((resolve, reject) => {
      call = stub.upload(md, { deadline: Date.now() + this.fileTimeoutMs }, (err, ref) =>
        err ? reject(err) : resolve(ref ?? {}),
      );
    });
    answer.catch(() => {}); // awaited below: a failure before that is not unhandled
    call.on('metadata', (h: grpc.Metadata) => this.servedBy('upload', h));
    call.on('error', () => {}); // the callback has it
    try {
      call.write({ info: { name, contentType: type || 'application/octet-stream' } });
      for (let i = 0; i < bytes.length; i += this.chunkBytes) {
        if (!call.write({ data: bytes.subarray(i, i + this.chunkBytes) })) {
          // a refusal (size limit) ends the call: stop writing then, too
          await Promise.race([once(call, 'drain'), answer.then(() => {})]);
        }
      }
      call.end();
      const ref = await answer;
      if (typeof ref.id !== 'string' || ref.id.length === 0) {
        throw new ChatError('UPLOAD', 'upload: the server answered without a file id');
      }
      return fileRef(ref);
    } catch (err) {
      if (err instanceof ChatError) throw err;
      const s = err as grpc.ServiceError;
      const e = chatErrorOf(s, 'upload refused');
      const tooLarge = s.code === grpc.status.INVALID_ARGUMENT && /exceeds the limit/.test(s.details ?? '');
      throw new ChatError('UPLOAD', e.message, {
        code: typeof s.code === 'number' ? s.code : 0,
        reason: tooLarge ? 'file_too_large' : statusName(s.code),
        cause: err,
      });
    }
  }

  // --- plumbing ---------------------------------------------------------------------------

  private makeContext(): LinkContext {
    return {
      user: this.user,
      settings: {
        gapFillMs: 300, // unused: the Join stream is gap-free
        historyPageSize: Math.min(500, positive(this.options.historyPageSize, 500, 'historyPageSize')),
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
      unary: (method, request, what) => this.unary(method, request, what),
      upload: (data, name, contentType) => this.upload(data, name, contentType),
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

  private rejectConnect(err: ChatError): void {
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.reject(err);
  }

  private setState(state: ConnectionState): void {
    if (this._state === state) return;
    this._state = state;
    this.emit('state', state);
  }
}

function fileRef(m: FileRefMsg): FileRef {
  return { id: m.id ?? '', name: m.name ?? '', size: m.size ?? 0, contentType: m.contentType ?? '' };
}

async function toBytes(data: Blob | ArrayBuffer | ArrayBufferView): Promise<Uint8Array> {
  if (typeof Blob !== 'undefined' && data instanceof Blob) return new Uint8Array(await data.arrayBuffer());
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new ChatError('INVALID', 'sendFile: expected a Blob, an ArrayBuffer or a typed array');
}
