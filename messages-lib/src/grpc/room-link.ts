import type * as grpc from '@grpc/grpc-js';
import { status as Status } from '@grpc/grpc-js';
import {
  ChatHeader,
  type HistoryReply,
  type HistoryRequest,
  type JoinRequest,
  type LeaveReply,
  type proto,
  type SendRequest,
} from '@switchboard/protocol';
import { ChatError } from '../errors.js';
import type { OutboxEntry } from '../outbox.js';
import type { OutboxKeeper } from '../outbox-keeper.js';
import type { Room, RoomHost, RoomTransport } from '../room.js';
import type { RoomFeed } from '../room-types.js';
import type { ChatMessage, FileRef, JoinReply, SendAck } from '../types.js';
import { backoffDelay, type BackoffOptions, clamp01, type Timer } from '../util.js';
import type { ChatStub } from './proto.js';
import { chatErrorOf, endsConnection, type GrpcStatusLike, isDrain, statusName } from './status.js';

/** Response header naming the node that served a call (docs/grpc.md). */
export const NODE_HEADER = ChatHeader.node;

export type GrpcMethod = 'join' | 'send' | 'history' | 'upload' | 'download';

/** What a room's link needs from its client. Internal. */
export interface LinkContext {
  readonly user: string;
  readonly settings: RoomHost['settings'];
  readonly outbox: OutboxKeeper;
  readonly backoff: BackoffOptions;
  readonly drainJitterMs: number;
  /** A stream that lived this long resets the backoff. */
  readonly stableMs: number;
  /** Longest wait of a join for its replay to reach the room's lastSeq. */
  readonly replayWaitMs: number;
  readonly random: () => number;
  /** connect() succeeded and neither close() nor an auth refusal happened since. */
  connected(): boolean;
  stub(): ChatStub | undefined;
  metadata(): Promise<grpc.Metadata>;
  unary<T>(method: 'send' | 'history', request: object, what: string): Promise<T>;
  upload(data: Blob | ArrayBuffer | ArrayBufferView, name: string, contentType?: string): Promise<FileRef>;
  /** A call was refused for its token: the client stops until connect() is called again. */
  authFailed(err: ChatError): void;
  served(method: GrpcMethod, node: string): void;
  streamJoined(room: string, node: string): void;
  disconnected(room: string, code: number, reason: string): void;
  reconnecting(room: string, attempt: number, delayMs: number, code: number, reason: string): void;
  catchingUp(room: string, missed: number): void;
  reportError(err: ChatError): void;
  forget(link: RoomLink): void;
  /** A link went up or down: the client's state may change. */
  changed(): void;
}

type JoinResult = JoinReply & { feedFrom: number };

/**
 * One room over gRPC: the room's Join stream is its "connection". The shared `Room` does the
 * ordering, dedupe and outbox; this link is its transport (RoomTransport) as Chat RPCs (join → a
 * Join stream, send → Send, history → History, leave → cancelling the stream) and feeds it the
 * stream's events as an authoritative feed (the server sends every stored message
 * after `since`, gap-free and in order).
 *
 * When the stream ends (node death, GOAWAY / max connection age, UNAVAILABLE from a draining
 * node, a cut for not reading), the room is told the connection is lost and the link reopens it
 * after exponential backoff with full jitter (a drain: only jitter), Joining with `since` = the
 * highest seq delivered; the room then resends its unacked outbox with the same clientMsgIds.
 */
export class RoomLink implements RoomHost, RoomTransport {
  readonly authoritativeFeed = true;
  room!: Room;
  /** The node serving the current (or last) Join stream. */
  node: string | undefined;

  private call: grpc.ClientReadableStream<proto.ChatEvent> | undefined;
  /** Between start() and a loss: requests may go out. */
  private up = false;
  /** The current stream delivered its `joined` event (when). */
  private joinedAt: number | undefined;
  private everJoined = false;
  private attempt = 0;
  private timer: Timer | undefined;
  private disposed = false;
  private feed: RoomFeed | undefined;

  constructor(
    private readonly ctx: LinkContext,
    readonly name: string,
  ) {}

  get user(): string {
    return this.ctx.user;
  }

  get settings(): RoomHost['settings'] {
    return this.ctx.settings;
  }

  /** The room was joined once and its stream is not live now (it is reconnecting). */
  get reconnectingNow(): boolean {
    return this.everJoined && this.joinedAt === undefined && !this.disposed;
  }

  isOpen(): boolean {
    return this.up && !this.disposed && this.ctx.connected();
  }

  /** The client is connected: join (or rejoin) now. */
  start(): void {
    if (this.up || this.disposed) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.up = true;
    this.room.onOpen();
  }

  /** Down without reconnecting (an auth refusal): the room waits for the next start(). */
  down(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.cancelCall();
    this.joinedAt = undefined;
    if (!this.up) return;
    this.up = false;
    this.room.onLost();
  }

  /** For good (room left, client closed). */
  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.up = false;
    this.joinedAt = undefined;
    this.cancelCall();
  }

  // --- RoomTransport: the room's traffic as Chat RPCs ----------------------------------------

  /** A Join stream: the feed (from `since`) and the join's answer in one call. */
  join(body: JoinRequest): Promise<JoinResult> {
    return this.openJoin(body);
  }

  /** Ending the Join stream is what leaves the room on the server: left if it was open. */
  leave(): Promise<LeaveReply> {
    const left = this.up;
    this.cancelCall();
    return Promise.resolve({ left });
  }

  listen(feed: RoomFeed | undefined): void {
    this.feed = feed;
  }

  stopFeed(): void {
    this.up = false;
    this.joinedAt = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.cancelCall();
  }

  /** The server's limits answer (INVALID_ARGUMENT, RESOURCE_EXHAUSTED: refused for good). */
  checkFrame(): void {}

  // --- RoomHost -----------------------------------------------------------------------------

  persist(entry: OutboxEntry): Promise<void> {
    return this.ctx.outbox.persist(entry);
  }

  unpersist(clientMsgId: string): void {
    this.ctx.outbox.unpersist(clientMsgId);
  }

  giveBack(entries: OutboxEntry[]): void {
    this.ctx.outbox.giveBack(entries);
  }

  upload(data: Blob | ArrayBuffer | ArrayBufferView, name: string, contentType?: string): Promise<FileRef> {
    return this.ctx.upload(data, name, contentType);
  }

  catchingUp(room: string, missed: number): void {
    this.ctx.catchingUp(room, missed);
  }

  reportError(err: ChatError): void {
    this.ctx.reportError(err);
  }

  forget(): void {
    this.dispose();
    this.ctx.forget(this);
  }

  // --- calls ------------------------------------------------------------------------------

  private cancelCall(): void {
    const call = this.call;
    this.call = undefined;
    call?.cancel();
  }

  private async openJoin(req: JoinRequest): Promise<JoinResult> {
    this.cancelCall();
    this.joinedAt = undefined;
    let md: grpc.Metadata;
    try {
      md = await this.ctx.metadata();
    } catch (err) {
      const e = err instanceof ChatError ? err : new ChatError('AUTH', String(err), { cause: err });
      this.reportError(e);
      if (this.up) this.lost({ code: Status.UNAUTHENTICATED, details: e.message });
      throw new ChatError('DISCONNECTED', e.message, { cause: e });
    }
    const stub = this.ctx.stub();
    if (!stub || !this.isOpen() || this.call) throw new ChatError('DISCONNECTED', 'not connected');
    const request: proto.JoinRequest = {
      room: this.name,
      user: req.user,
      ...(req.since !== undefined ? { since: req.since } : {}),
      ...(req.resumeToken !== undefined ? { resumeToken: req.resumeToken } : {}),
    };
    const call = stub.join(request, md);
    this.call = call;
    return new Promise<JoinResult>((resolve, reject) => {
      let joined = false;
      /**
       * The join's answer waits for the replay up to the room's lastSeq, so that join() resolves
       * with what the join brought in room.messages, as over WebSocket. Bounded: the newest seq
       * may be a hole (a send that reserved it and failed), which the stream does not announce.
       */
      let answer: JoinResult | undefined;
      let replayTimer: Timer | undefined;
      const answerNow = (): void => {
        clearTimeout(replayTimer);
        replayTimer = undefined;
        if (!answer) return;
        const a = answer;
        answer = undefined;
        resolve(a);
      };
      call.on('metadata', (headers: grpc.Metadata) => {
        const node = headers.get(NODE_HEADER)[0];
        if (typeof node === 'string') this.ctx.served('join', node);
      });
      call.on('data', (ev: proto.ChatEvent) => {
        if (this.call !== call) return;
        if (ev.event === 'joined' && !joined) {
          joined = true;
          this.joinedAt = Date.now();
          this.everJoined = true;
          this.node = ev.joined?.node ?? this.node;
          answer = {
            room: this.name,
            lastSeq: ev.joined?.lastSeq ?? 0,
            messages: [],
            truncated: false,
            feedFrom: ev.seq ?? 0,
            ...(ev.joined?.resumeToken ? { resumeToken: ev.joined.resumeToken } : {}),
          };
          if (answer.lastSeq <= answer.feedFrom) answerNow();
          else replayTimer = setTimeout(answerNow, this.ctx.replayWaitMs);
          this.ctx.streamJoined(this.name, this.node ?? '');
          this.ctx.changed();
        } else if (ev.event === 'message' && joined && ev.message) {
          const m = toChatMessage(ev.message);
          this.feed?.message(m);
          if (answer && m.seq >= answer.lastSeq) answerNow();
        } else if (ev.event === 'presence' && joined) {
          answerNow(); // presence flows once the replay is done
          this.feed?.presence({ room: this.name, users: ev.presence?.users ?? [] });
        }
      });
      call.on('error', () => {}); // the status follows
      call.on('status', (s: grpc.StatusObject) => {
        answerNow(); // what the replay brought is the room's; the loss below follows it
        if (this.call !== call) {
          if (!joined) reject(new ChatError('DISCONNECTED', `the Join of ${this.name} was superseded`));
          return;
        }
        this.call = undefined;
        if (joined) return this.lost(s);
        if (s.code === Status.UNAUTHENTICATED) {
          const e = chatErrorOf(s, `joining ${this.name}`);
          if (!this.everJoined) return reject(e); // the caller of join() hears it
          reject(new ChatError('DISCONNECTED', e.message, { cause: e }));
          this.ctx.authFailed(e);
          return;
        }
        if (endsConnection(s)) {
          reject(new ChatError('DISCONNECTED', `joining ${this.name}: ${s.details || statusName(s.code)}`));
          this.lost(s);
          return;
        }
        // A refusal (409, 403, 400…) or a retryable bus failure: the room decides, as for chat.join.
        reject(chatErrorOf(s, `joining ${this.name}`));
      });
    });
  }

  /** The stream is gone: the room is told, and the link reopens it after backoff (drain: jitter). */
  private lost(s: GrpcStatusLike): void {
    if (this.disposed) return;
    if (this.joinedAt !== undefined && Date.now() - this.joinedAt >= this.ctx.stableMs) this.attempt = 0;
    this.joinedAt = undefined;
    const wasUp = this.up;
    this.up = false;
    if (wasUp) this.room.onLost();
    const reason = s.details || statusName(s.code);
    this.ctx.disconnected(this.name, s.code, reason);
    this.ctx.changed();
    if (!this.ctx.connected()) return;
    const attempt = this.attempt;
    let delayMs: number;
    if (isDrain(s)) delayMs = Math.floor(clamp01(this.ctx.random()) * this.ctx.drainJitterMs);
    else delayMs = backoffDelay(this.attempt++, this.ctx.backoff, this.ctx.random);
    this.ctx.reconnecting(this.name, attempt, delayMs, s.code, reason);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.ctx.connected()) this.start();
    }, delayMs);
  }

  async send(body: SendRequest): Promise<SendAck> {
    const request: proto.SendRequest = {
      room: this.name,
      user: body.user,
      clientMsgId: body.clientMsgId,
      ...(body.text !== undefined ? { text: body.text } : {}),
      ...(body.file !== undefined ? { file: { id: body.file.id } } : {}),
    };
    let ack: proto.SendAck;
    try {
      ack = await this.ctx.unary('send', request, `sending to ${this.name}`);
    } catch (err) {
      if (ChatError.is(err, 'AUTH')) {
        // kept in the outbox: resent once connect() is called again (with a fresh token)
        this.ctx.authFailed(err);
        throw new ChatError('DISCONNECTED', err.message, { cause: err });
      }
      throw err;
    }
    if (typeof ack.seq !== 'number' || typeof ack.id !== 'string') {
      throw new ChatError('ERROR', `sending to ${this.name}: malformed ack`);
    }
    return { seq: ack.seq, id: ack.id, ts: ack.ts ?? 0 };
  }

  async history(body: HistoryRequest): Promise<HistoryReply> {
    const request: proto.HistoryRequest = {
      room: this.name,
      ...(body.limit !== undefined ? { limit: body.limit } : {}),
      ...(body.afterSeq !== undefined ? { afterSeq: body.afterSeq } : {}),
      ...(body.beforeSeq !== undefined ? { beforeSeq: body.beforeSeq } : {}),
    };
    const reply = await this.ctx.unary<proto.HistoryResponse>('history', request, `history of ${this.name}`);
    return { messages: (reply.messages ?? []).map(toChatMessage) };
  }
}

/** A proto ChatMessage (unset fields absent) as the library's ChatMessage. */
export function toChatMessage(m: proto.ChatMessage): ChatMessage {
  return {
    room: m.room ?? '',
    seq: m.seq ?? 0,
    id: m.id ?? '',
    clientMsgId: m.clientMsgId ?? '',
    user: m.user ?? '',
    ...(m.text ? { text: m.text } : {}),
    ...(m.file?.id
      ? {
          file: {
            id: m.file.id,
            name: m.file.name ?? '',
            size: m.file.size ?? 0,
            contentType: m.file.contentType ?? '',
          },
        }
      : {}),
    ts: m.ts ?? 0,
  };
}
