import { createHash, randomBytes } from 'node:crypto';
import {
  ChatFailure,
  ChatHeader,
  type HistoryReply,
  type JoinReply,
  type LeaveReply,
  type SendAck,
} from '@switchboard/protocol';
import { nodeOfReplyAddress } from '../eventbus/address.js';
import type { EventBus, Message } from '../eventbus/types.js';
import { FileStoreError, type FileStore } from '../files/file-store.js';
import type { AppendResult, FileRef, MessageStore } from '../store/types.js';
import { TRACEPARENT } from '../trace/trace-context.js';
import type { NameClaims } from './name-claims.js';
import type { OwnerRouting } from './owner-routing.js';
import type { Presence } from './presence.js';
import type { PresencePublisher } from './presence-publisher.js';
import { ChatRequestError, parseRequest } from './requests.js';
import type { chatSchemas } from './schemas.js';

/** What metrics see of the client requests (ChatObserver adds the publishes). */
export interface RequestObserver {
  /** A join was answered; `resumed` when the client sent `since`, with `replayed` messages returned. */
  joined(resumed: boolean, replayed: number): void;
  /** A send was acked; `duplicate` for an idempotent retry. */
  messageIn(duplicate: boolean): void;
}

export interface ChatHandlersOptions {
  bus: Pick<EventBus, 'nodeId'>;
  store: Pick<MessageStore, 'epoch'>;
  files: Pick<FileStore, 'attach'>;
  schemas: ReturnType<typeof chatSchemas>;
  routing: OwnerRouting;
  presence: Presence;
  presenceOut: PresencePublisher;
  claims: NameClaims;
  observer: RequestObserver | undefined;
}

/**
 * The client-facing requests (chat.join, chat.send, chat.history, chat.leave): validation, the
 * name rule and presence here, the room's messages through its owner (owner-routing.ts).
 */
export class ChatHandlers {
  /** Appends not yet answered by the store, by room, user and clientMsgId. */
  private readonly appending = new Map<string, Promise<AppendResult>>();

  constructor(private readonly opts: ChatHandlersOptions) {}

  async join(m: Message<unknown>): Promise<JoinReply | undefined> {
    // Nobody waits for the catch-up (sent without a reply address): no store read for it.
    if (!m.replyAddress) return undefined;
    const { routing, presence, claims } = this.opts;
    const body = parseRequest(this.opts.schemas.join, m.body, m.headers);
    const { room } = body;
    const { epoch, lastSeq, messages, truncated } = await routing.catchUp(room, body.since);
    const newest = messages.at(-1)?.seq ?? 0;
    const { session, node } = this.connectionOf(m, body.user);
    const verified = m.headers[ChatHeader.verifiedUser] !== undefined;
    const resumeToken = body.resumeToken ?? randomBytes(24).toString('base64url');
    const tokenHash = hashToken(resumeToken);
    if (!verified) {
      // Open mode: a name is held by one client per room (an atomic claim decides between
      // concurrent joins); its resume token lets it back in, replacing its old connection.
      const won = await claims.claim(room, body.user, { s: session, n: node, k: tokenHash });
      if (!won) {
        throw new ChatRequestError(
          ChatFailure.NAME_TAKEN,
          `user: the name ${JSON.stringify(body.user)} is taken in room ${JSON.stringify(room)}`,
        );
      }
      for (const h of await presence.heldElsewhere(room, body.user, session))
        await presence.removeRaw(room, h.raw);
    }
    await presence.join(room, body.user, session, node, verified ? undefined : tokenHash);
    this.opts.presenceOut.changed(room);
    const reply: JoinReply = { room, epoch, lastSeq: Math.max(lastSeq, newest), messages, truncated };
    if (!verified) reply.resumeToken = resumeToken;
    this.opts.observer?.joined(body.since !== undefined, messages.length);
    return reply;
  }

  async send(m: Message<unknown>): Promise<SendAck> {
    const body = parseRequest(this.opts.schemas.send, m.body, m.headers);
    let file: FileRef | undefined;
    if (body.file) {
      try {
        // The file joins the message's room (or must already be in it): see FileStore.attach.
        file = await this.opts.files.attach(body.file.id, body.room, m.headers[ChatHeader.verifiedUser]);
      } catch (err) {
        if (err instanceof FileStoreError && err.code === 'FORBIDDEN') {
          throw new ChatRequestError(ChatFailure.FORBIDDEN, `file: ${err.message}`);
        }
        if (err instanceof FileStoreError) {
          throw new ChatRequestError(
            ChatFailure.NOT_FOUND,
            `file: no uploaded file with id ${JSON.stringify(body.file.id)}`,
          );
        }
        throw err;
      }
    }
    // A client that timed out retries with the same clientMsgId while the first attempt may still
    // wait in the store's queue: share that attempt instead of queueing the work twice, so a slow
    // store is not buried under retries.
    const key = `${body.room}\u0000${body.user}\u0000${body.clientMsgId}`;
    const inFlight = this.appending.get(key);
    let append: Promise<AppendResult>;
    if (inFlight) append = inFlight.then((r) => ({ ...r, duplicate: true }));
    else {
      append = this.opts.routing.append(
        {
          room: body.room,
          user: body.user,
          clientMsgId: body.clientMsgId,
          ...(body.text !== undefined ? { text: body.text } : {}),
          ...(file ? { file } : {}),
        },
        m.headers[TRACEPARENT],
      );
      this.appending.set(key, append);
      void append.then(
        () => this.appending.delete(key),
        () => this.appending.delete(key),
      );
    }
    // The writer (owner, or this node) has published the message by now; see RoomWriter.
    const { message, duplicate } = await append;
    // The store keeps one message per (room, clientMsgId): another user's id is not a retry of ours.
    if (duplicate && message.user !== body.user) {
      throw new ChatRequestError(
        ChatFailure.CONFLICT,
        'clientMsgId: already used in this room by another user; send with a new one',
      );
    }
    this.opts.observer?.messageIn(duplicate);
    return { seq: message.seq, id: message.id, ts: message.ts };
  }

  async history(m: Message<unknown>): Promise<HistoryReply> {
    // Nobody waits for the answer (sent without a reply address): do not read the store for it.
    if (!m.replyAddress) return { epoch: this.opts.store.epoch(), messages: [] };
    const body = parseRequest(this.opts.schemas.history, m.body);
    const query = {
      limit: body.limit,
      ...(body.afterSeq !== undefined ? { afterSeq: body.afterSeq } : {}),
      ...(body.beforeSeq !== undefined ? { beforeSeq: body.beforeSeq } : {}),
    };
    const messages = await this.opts.routing.history(body.room, query);
    return { epoch: this.opts.store.epoch(), messages };
  }

  async leave(m: Message<unknown>): Promise<LeaveReply> {
    const body = parseRequest(this.opts.schemas.leave, m.body, m.headers);
    const session = m.headers[ChatHeader.session];
    const left = await this.opts.presence.leave(body.room, body.user, session);
    await this.opts.claims.release(body.room, body.user, session);
    if (left) this.opts.presenceOut.changed(body.room);
    return { left };
  }

  /** The connection a request speaks for: bridges say so in headers; otherwise the requesting node. */
  private connectionOf(m: Message<unknown>, user: string): { session: string; node: string } {
    const node =
      m.headers[ChatHeader.node] ??
      (m.replyAddress ? nodeOfReplyAddress(m.replyAddress) : undefined) ??
      this.opts.bus.nodeId;
    const session = m.headers[ChatHeader.session] ?? `user:${user}`;
    return { session, node };
  }
}

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url').slice(0, 22);
}
