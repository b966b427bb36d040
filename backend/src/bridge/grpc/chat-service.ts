import {
  Metadata,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  status,
} from '@grpc/grpc-js';
import {
  Chat,
  type ChatMessage,
  DEFAULT_CHAT_LIMITS,
  type PresenceUpdate,
  type RequestAddress,
  ROOM_NAME_RULE,
  ROOM_PATTERN,
  SeqOrder,
} from '@switchboard/protocol';
import type { Principal } from '../../auth/principal.js';
import type { EventBus, MessageConsumer } from '../../eventbus/types.js';
import type { UploadLimits } from '../../files/access.js';
import type { FileStore } from '../../files/file-store.js';
import type { BridgeEvent, BridgeSocketInfo } from '../core/hook.js';
import { routingFor } from '../core/options.js';
import { clientStream, serverMetadata, serverStream, unary } from './calls.js';
import { downloadFromStore, uploadToStore } from './chat-files.js';
import {
  authenticateCall,
  endAtExpiry,
  type GrpcBridgeContext,
  notifyHook,
  peerSession,
  requirePermission,
  runHook,
  socketInfo,
  stampHeaders,
} from './context.js';
import { BoundedStreamWriter } from './flow.js';
import type { proto } from '@switchboard/protocol';
import type { ChatHandlers } from './proto.js';
import { chatRecipientStatus, GrpcError, toGrpcError } from './status.js';

/** Messages a history page asks for while a Join catches up. */
const PAGE = DEFAULT_CHAT_LIMITS.historyMaxLimit;

/**
 * `switchboard.chat.v1.Chat`: each RPC is a translation onto the chat.* bus addresses, through the
 * same permissions and hook as the WebSocket bridge (with a token, the user is the token's).
 * Upload/Download go to the file store, as `POST /files` and `GET /files/:id` do.
 */
export class ChatGrpcService {
  private readonly streams = new Set<BoundedStreamWriter<proto.ChatEvent>>();

  constructor(
    private readonly bus: EventBus,
    private readonly files: FileStore,
    private readonly ctx: GrpcBridgeContext,
    private readonly uploads?: UploadLimits,
  ) {}

  handlers(): ChatHandlers {
    return {
      join: serverStream(this.ctx, (call) => this.join(call)),
      send: unary(
        this.ctx,
        (call: ServerUnaryCall<proto.SendRequest, proto.SendAck>) => this.send(call),
        chatRecipientStatus,
      ),
      history: unary(
        this.ctx,
        (call: ServerUnaryCall<proto.HistoryRequest, proto.HistoryResponse>) => this.history(call),
        chatRecipientStatus,
      ),
      upload: clientStream(this.ctx, (call: ServerReadableStream<proto.UploadChunk, proto.FileRef>) =>
        uploadToStore(this.ctx, this.files, this.uploads, call),
      ),
      download: serverStream(
        this.ctx,
        (call: ServerWritableStream<proto.DownloadRequest, proto.DownloadChunk>) =>
          downloadFromStore(this.ctx, this.files, call),
      ),
    };
  }

  /** Ends every Join stream with UNAVAILABLE and a `reconnect` trailer (node draining). */
  closeAll(reason: string): number {
    const open = [...this.streams];
    for (const w of open) {
      const md = new Metadata();
      md.set('reconnect', 'true');
      w.fail(status.UNAVAILABLE, `${reason}: reconnect and Join with since`, md);
    }
    return open.length;
  }

  // --- unary ------------------------------------------------------------------------------------

  private async send(call: ServerUnaryCall<proto.SendRequest, proto.SendAck>): Promise<proto.SendAck> {
    const r = call.request;
    const reply = await this.requestAs(call, Chat.send, {
      room: r.room ?? '',
      user: r.user ?? '',
      clientMsgId: r.clientMsgId ?? '',
      ...(r.text ? { text: r.text } : {}),
      ...(r.file?.id ? { file: { id: r.file.id } } : {}),
    });
    return { seq: reply.seq, id: reply.id, ts: reply.ts };
  }

  private async history(
    call: ServerUnaryCall<proto.HistoryRequest, proto.HistoryResponse>,
  ): Promise<proto.HistoryResponse> {
    const r = call.request;
    const reply = await this.requestAs(call, Chat.history, {
      room: r.room ?? '',
      ...(r.afterSeq !== undefined ? { afterSeq: r.afterSeq } : {}),
      ...(r.beforeSeq !== undefined ? { beforeSeq: r.beforeSeq } : {}),
      ...(r.limit ? { limit: r.limit } : {}),
    });
    return { messages: reply.messages.map(toMessage) };
  }

  /** A chat request as the client's: through permissions and the hook, typed by its address. */
  private async requestAs<Req, Rep>(
    call: { metadata: Metadata; getPeer(): string },
    address: RequestAddress<Req, Rep>,
    body: NoInfer<Req>,
    socket?: BridgeSocketInfo,
  ): Promise<Rep> {
    const s =
      socket ??
      socketInfo(
        this.ctx,
        await authenticateCall(this.ctx, call.metadata),
        call.getPeer(),
        peerSession(call.getPeer()),
      );
    requirePermission(this.ctx.options.inbound, address, body, s.principal);
    const event: BridgeEvent = { type: 'SEND', socket: s, frame: { address, body } };
    await runHook(this.ctx, event);
    // The hook may rewrite the body, not the address: the reply is still the address's.
    const reply = await this.bus.request<Rep>(address, event.frame!.body, {
      headers: stampHeaders(s, event.frame!.headers, call.metadata),
      timeout: this.ctx.options.replyTimeoutMs,
      ...routingFor(this.ctx.options, address),
    });
    return reply.body;
  }

  // --- Join ---------------------------------------------------------------------------------------

  /**
   * Registers `chat.room.<room>` (and presence) first, then asks `chat.join` with `since`, then
   * pages `chat.history` while the join was truncated; live messages that arrive meanwhile wait
   * and are merged by seq (SeqOrder, the core messages-lib's rooms run too). A gap in the live
   * stream (seq n+2 before n+1, e.g. two nodes storing out of order) is filled from history at
   * once, which is authoritative: a hole it confirms is skipped.
   */
  private async join(call: ServerWritableStream<proto.JoinRequest, proto.ChatEvent>): Promise<void> {
    const fail = (err: unknown): void => {
      const e = toGrpcError(err, chatRecipientStatus);
      call.emit('error', { code: e.code, details: e.details, metadata: e.metadata });
    };
    let admitted: () => void;
    try {
      admitted = this.ctx.admission.stream(call.getPeer());
    } catch (err) {
      return fail(err);
    }
    const consumers: MessageConsumer[] = [];
    let socket: BridgeSocketInfo | undefined;
    let closed = false;
    let expiry = (): void => {};
    const writer = new BoundedStreamWriter<proto.ChatEvent>(call, this.ctx.maxStreamQueue, () => {
      closed = true;
      admitted();
      expiry();
      this.streams.delete(writer);
      for (const c of consumers) void c.unregister().catch(() => {}); // the bus logs a failure
      // SOCKET_CLOSED: the chat policy sends chat.leave for the room this stream joined
      if (socket) notifyHook(this.ctx, 'SOCKET_CLOSED', socket);
    });
    this.streams.add(writer);
    try {
      const req = call.request;
      const room = req.room ?? '';
      if (!ROOM_PATTERN.test(room)) throw new GrpcError(status.INVALID_ARGUMENT, `room: ${ROOM_NAME_RULE}`);
      const principal: Principal | undefined = await authenticateCall(this.ctx, call.metadata);
      socket = socketInfo(this.ctx, principal, call.getPeer());
      expiry = endAtExpiry(principal, (code, details) => writer.fail(code, details));
      await runHook(this.ctx, { type: 'SOCKET_CREATED', socket });
      // The room's messages in seq order, each once: the same core as messages-lib's rooms.
      const order = new SeqOrder<ChatMessage>(req.since);
      const at = (): number => order.lastSeq ?? 0;
      const write = (messages: ChatMessage[]): void => {
        for (const m of messages) writer.write({ seq: m.seq, message: toMessage(m) });
      };
      let catchingUp = true;
      let presenceLater: string[] | undefined;
      /** Live messages not yet ordered (they wait while the join catches up). */
      const pending = new Map<number, ChatMessage>();
      // Pages history from the cursor up to `upTo`; the store is authoritative, so the last page
      // (a short one) moves the order past any hole below `upTo`.
      const fillFromHistory = async (upTo: number): Promise<void> => {
        while (!closed && at() < upTo) {
          const after = at();
          const page = await this.requestAs(
            call,
            Chat.history,
            { room, afterSeq: after, beforeSeq: upTo + 1, limit: PAGE },
            socket,
          );
          const end = page.messages.length < PAGE;
          write(order.merge(page.messages, end ? upTo : undefined));
          if (end || at() === after) break;
        }
      };
      const emitInOrder = async (): Promise<void> => {
        const arrived = [...pending.values()].sort((a, b) => a.seq - b.seq);
        pending.clear();
        for (const m of arrived) write(order.live(m));
        // A gap in the live stream (seq n+2 before n+1): filled from history at once.
        for (let top = order.highestWaiting(); top !== undefined && !closed; top = order.highestWaiting()) {
          const before = at();
          await fillFromHistory(top);
          if (at() === before) break;
        }
      };
      let chain = Promise.resolve();
      const live = (m: ChatMessage): void => {
        if (closed || typeof m?.seq !== 'number') return;
        pending.set(m.seq, m);
        if (catchingUp) return;
        chain = chain.then(emitInOrder).catch((err: unknown) => fail(err));
      };
      for (const address of [Chat.room(room), Chat.presence(room)]) {
        requirePermission(this.ctx.options.outboundByAddress, address, undefined, principal);
        await runHook(this.ctx, { type: 'REGISTER', socket, frame: { address } });
      }
      consumers.push(this.bus.consumer<ChatMessage>(Chat.room(room), (m) => live(m.body)));
      consumers.push(
        this.bus.consumer<PresenceUpdate>(Chat.presence(room), (m) => {
          if (closed) return;
          // the latest presence during catch-up (our own join's, typically) follows it
          if (catchingUp) return void (presenceLater = m.body.users ?? []);
          writer.write({ seq: at(), presence: { room, users: m.body.users ?? [] } });
        }),
      );
      await Promise.all(consumers.map((c) => c.completion));
      if (closed) return;
      const reply = await this.requestAs(
        call,
        Chat.join,
        {
          room,
          user: req.user ?? '',
          ...(req.since !== undefined ? { since: req.since } : {}),
          ...(req.resumeToken ? { resumeToken: req.resumeToken } : {}),
        },
        socket,
      );
      if (closed) return;
      call.sendMetadata(serverMetadata(this.ctx));
      const first = reply.messages[0]?.seq;
      // a first join (no since) starts at the newest messages, not at seq 1
      if (req.since === undefined) order.place(first !== undefined ? first - 1 : reply.lastSeq);
      writer.write({
        seq: at(),
        joined: {
          room,
          lastSeq: reply.lastSeq,
          node: this.ctx.nodeId,
          ...(reply.resumeToken ? { resumeToken: reply.resumeToken } : {}),
        },
      });
      write(order.merge(reply.messages));
      if (reply.truncated || at() < reply.lastSeq) await fillFromHistory(reply.lastSeq);
      catchingUp = false;
      if (presenceLater) writer.write({ seq: at(), presence: { room, users: presenceLater } });
      chain = chain.then(emitInOrder).catch((err: unknown) => fail(err));
    } catch (err) {
      fail(err);
    }
  }
}

function toMessage(m: ChatMessage): proto.ChatMessage {
  return {
    room: m.room,
    seq: m.seq,
    id: m.id,
    clientMsgId: m.clientMsgId,
    user: m.user,
    ...(m.text !== undefined ? { text: m.text } : {}),
    ...(m.file ? { file: { ...m.file } } : {}),
    ts: m.ts,
  };
}
