import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { z } from 'zod';
import { nodeOfReplyAddress } from '../eventbus/address.js';
import type { EventBus, Message, MessageConsumer } from '../eventbus/types.js';
import { FileStoreError, type FileStore } from '../files/file-store.js';
import { ReplyException } from '../eventbus/failures.js';
import {
  StoreError,
  type AppendInput,
  type AppendResult,
  type ChatMessage,
  type FileRef,
  type HistoryQuery,
  type MessageStore,
} from '../store/types.js';
import { childOf, TRACEPARENT } from '../trace/trace-context.js';
import { ChatAddress, ChatFailure, ChatHeader } from './addresses.js';
import type { ChatCluster, Membership } from './chat-cluster.js';
import { ackAndDropSeq, crashAt, publishesHereOnly } from './fault-points.js';
import { NameClaims } from './name-claims.js';
import { Presence } from './presence.js';
import { PositionCheck } from './position-check.js';
import { PublishedKeys } from './published-keys.js';
import { appendAddress, ownerOf, readAddress } from './room-owner.js';
import { type ChatLimits, chatSchemas, DEFAULT_CHAT_LIMITS, describeIssues } from './schemas.js';

/** How many (room, clientMsgId) keys a node remembers having published (see PublishedKeys). */
const PUBLISHED_KEYS_MAX = 10_000;

/** An owner's answer to a forwarded append: `published` once it has published the message itself. */
type OwnerAppend = AppendResult & { published?: boolean };

/** A join's catch-up as read at the room's owner. */
interface CatchUp {
  /** The owner store's epoch (see MessageStore.epoch). */
  epoch: string;
  lastSeq: number;
  messages: ChatMessage[];
  truncated: boolean;
}

/** A read forwarded to a room's owner. */
type OwnerRead =
  | { op: 'join'; room: string; since: number | undefined }
  | { op: 'history'; room: string; query: HistoryQuery };

/** How a 503 of a store shedding load starts (load-shed.ts's "store busy: …"). */
const STORE_BUSY = 'message store busy';

/** How long a forwarded append may take before the client is asked to retry. */
const FORWARD_TIMEOUT_MS = 10_000;

export interface ChatServiceOptions {
  bus: EventBus;
  /** A ClusterManager fits: see chat-cluster.ts for the part of it chat uses. */
  cluster: ChatCluster;
  store: MessageStore;
  files: FileStore;
  limits?: Partial<ChatLimits>;
  logger?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  observer?: ChatObserver;
  /**
   * Called for every change of the set of nodes owning rooms that this node sees, with whether
   * this node owned a room both before and after it: any other room may have been written by
   * another node (a recent tail of it may be stale). The set is also checked every
   * `ownersCheckMs`, so a change is seen even while no request asks for an owner.
   */
  onOwnersChanged?: (ownedThroughout: (room: string) => boolean) => void;
  /** How often the owner set is checked without a request asking (default 250 ms). */
  ownersCheckMs?: number;
  /** ROOM_TOP_QUIET_MS: a room's top goes to every node this long after its last publish (0: never). */
  roomTopQuietMs?: number;
  /** Consumers of an address on this node: with it, the node fills publishes it missed (room-watch.ts). */
  consumersOf?: (address: string) => number;
}

/** What metrics see of the chat service. */
export interface ChatObserver {
  /** A join was answered; `resumed` when the client sent `since`, with `replayed` messages returned. */
  joined(resumed: boolean, replayed: number): void;
  /** A send was acked; `duplicate` for an idempotent retry. */
  messageIn(duplicate: boolean): void;
  /** A stored message was published to its room. */
  published(): void;
}

export interface SendAck {
  seq: number;
  id: string;
  ts: number;
}

export interface JoinReply {
  room: string;
  /** The store's epoch: when it changes, seqs started again and the client resyncs. */
  epoch: string;
  lastSeq: number;
  messages: ChatMessage[];
  /** True when more messages follow the returned ones: page on with chat.history afterSeq. */
  truncated: boolean;
  /** Open mode: proves on a later join that the caller is the client holding this name. */
  resumeToken?: string;
}

class ChatRequestError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

const noLog = { warn: () => {}, info: () => {} };

/** ROOM_TOP_QUIET_MS by default: see room-tops.ts. */
export const DEFAULT_ROOM_TOP_QUIET_MS = 1_000;

/** Pause between presence snapshots of one room: 1 ms per user present, within these bounds. */
const PRESENCE_MIN_PAUSE_MS = 100;
const PRESENCE_MAX_PAUSE_MS = 2_000;

/**
 * The chat service: consumers on the bus, like Vert.x verticles. Every node runs one; any node can
 * answer any request, because seqs and idempotency live in the store and presence in the cluster.
 * A message is published on `chat.room.<room>` only after the store has it, then acked.
 */
export class ChatService {
  private readonly bus: EventBus;
  private readonly cluster: Membership;
  private readonly store: MessageStore;
  private readonly files: FileStore;
  private readonly limits: ChatLimits;
  private readonly schemas: ReturnType<typeof chatSchemas>;
  private readonly presence: Presence;
  private readonly claims: NameClaims;
  private readonly log: NonNullable<ChatServiceOptions['logger']>;
  private readonly observer: ChatObserver | undefined;
  private consumers: MessageConsumer[] = [];
  /** Rooms with a presence publish out or pausing; true when another one is due after it. */
  private readonly presenceDue = new Map<string, boolean>();
  /** Requests being handled now; a drain waits for them. */
  private inFlight = 0;
  /** Appends not yet answered by the store, by room and clientMsgId. */
  private readonly appending = new Map<string, Promise<AppendResult>>();
  /** Appends this node is storing and publishing as the room's writer, by room and clientMsgId. */
  private readonly storing = new Map<string, Promise<AppendResult>>();
  private readonly published = new PublishedKeys(PUBLISHED_KEYS_MAX);
  private readonly onOwnersChanged: ((ownedThroughout: (room: string) => boolean) => void) | undefined;
  /** The owner nodes as last seen, to notice a change. */
  private ownersKey = '';
  private ownerIds: readonly string[] = [];
  private readonly ownersCheckMs: number;
  private ownersTimer: NodeJS.Timeout | undefined;
  /** Room tops out, missed publishes in: see position-check.ts. */
  readonly positions: PositionCheck;

  constructor(options: ChatServiceOptions) {
    this.bus = options.bus;
    this.cluster = options.cluster;
    this.store = options.store;
    this.files = options.files;
    this.limits = { ...DEFAULT_CHAT_LIMITS, ...options.limits };
    this.schemas = chatSchemas(this.limits);
    this.presence = new Presence(
      options.cluster.multiMap('chat.presence'),
      options.cluster.multiMap('chat.presence.user'),
      options.cluster,
    );
    this.claims = new NameClaims(options.cluster.map('chat.names'), options.cluster);
    this.log = options.logger ?? noLog;
    this.observer = options.observer;
    this.onOwnersChanged = options.onOwnersChanged;
    this.ownersCheckMs = options.ownersCheckMs ?? 250;
    this.positions = new PositionCheck({
      bus: this.bus,
      quietMs: options.roomTopQuietMs ?? DEFAULT_ROOM_TOP_QUIET_MS,
      ...(options.consumersOf ? { consumersOf: options.consumersOf } : {}),
      read: (room, afterSeq, limit) => {
        const query = { afterSeq, limit };
        return this.atOwner(room, { op: 'history', room, query }, () => this.store.history(room, query));
      },
      epoch: () => this.store.epoch(),
      log: this.log,
    });
  }

  /** Whether this node is the room's owner now (or no node is: a single node owns everything). */
  ownsRoom(room: string): boolean {
    const owner = this.ownerOf(room);
    return owner === undefined || owner === this.bus.nodeId;
  }

  async start(): Promise<void> {
    this.consumers = [
      this.bus.consumer(
        ChatAddress.join,
        this.handle((m) => this.join(m)),
      ),
      this.bus.consumer(
        ChatAddress.send,
        this.handle((m) => this.send(m)),
      ),
      this.bus.consumer(
        ChatAddress.history,
        this.handle((m) => this.history(m)),
      ),
      this.bus.consumer(
        ChatAddress.leave,
        this.handle((m) => this.leave(m)),
      ),
      this.bus.consumer(
        appendAddress(this.bus.nodeId),
        this.handle((m) => this.appendOwned(m)),
      ),
      this.bus.consumer(
        readAddress(this.bus.nodeId),
        this.handle((m) => this.readOwned(m)),
      ),
    ];
    // Kept through stop(), until the node leaves the cluster (which takes every listener off): a
    // draining node still counts among the live ones, and may be the one to collect.
    this.cluster.on('nodeLeft', (nodeId) => {
      void this.collectPresence(nodeId).catch((err: unknown) =>
        this.log.warn({ nodeId, err: String(err) }, 'could not collect presence of a departed node'),
      );
    });
    // A room may move to a node and back between two requests here: each move must be seen, or a
    // tail kept across it would miss what the other owner stored meanwhile.
    this.ownersTimer = setInterval(() => this.owners(), this.ownersCheckMs);
    this.ownersTimer.unref();
    await Promise.all([...this.consumers.map((c) => c.completion), this.positions.start()]);
  }

  /**
   * Stops taking requests (consumers unregistered, so the cluster routes elsewhere) and waits,
   * at most `graceMs`, for the ones in flight to be answered: a drain must not drop an ack.
   */
  async stop(graceMs = 10_000): Promise<void> {
    clearInterval(this.ownersTimer);
    await Promise.all(this.consumers.map((c) => c.unregister()));
    this.consumers = [];
    const deadline = Date.now() + graceMs;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (this.inFlight > 0)
      this.log.warn({ inFlight: this.inFlight }, 'chat: requests still in flight at stop');
    await this.positions.stop();
  }

  // --- handlers ---------------------------------------------------------------------------

  private async join(m: Message<unknown>): Promise<JoinReply | undefined> {
    // Nobody waits for the catch-up (sent without a reply address): no store read for it.
    if (!m.replyAddress) return undefined;
    const body = this.parse(this.schemas.join, m.body, m.headers);
    const { room } = body;
    const since = body.since;
    const read = await this.atOwner<CatchUp>(room, { op: 'join', room, since }, () =>
      this.readCatchUp(room, since),
    );
    const { epoch, lastSeq, messages, truncated } = read;
    const newest = messages.at(-1)?.seq ?? 0;
    const { session, node } = this.connectionOf(m, body.user);
    const verified = m.headers[ChatHeader.verifiedUser] !== undefined;
    const resumeToken = body.resumeToken ?? randomBytes(24).toString('base64url');
    const tokenHash = hashToken(resumeToken);
    if (!verified) {
      // Open mode: a name is held by one client per room (an atomic claim decides between
      // concurrent joins); its resume token lets it back in, replacing its old connection.
      const won = await this.claims.claim(room, body.user, { s: session, n: node, k: tokenHash });
      if (!won) {
        throw new ChatRequestError(
          ChatFailure.NAME_TAKEN,
          `user: the name ${JSON.stringify(body.user)} is taken in room ${JSON.stringify(room)}`,
        );
      }
      for (const h of await this.presence.heldElsewhere(room, body.user, session))
        await this.presence.removeRaw(room, h.raw);
    }
    await this.presence.join(room, body.user, session, node, verified ? undefined : tokenHash);
    void this.publishPresence(room).catch((err: unknown) => this.presenceFailed(room, err));
    const reply: JoinReply = { room, epoch, lastSeq: Math.max(lastSeq, newest), messages, truncated };
    if (!verified) reply.resumeToken = resumeToken;
    this.observer?.joined(body.since !== undefined, messages.length);
    return reply;
  }

  private async send(m: Message<unknown>): Promise<SendAck> {
    const body = this.parse(this.schemas.send, m.body, m.headers);
    let file: FileRef | undefined;
    if (body.file) {
      try {
        // The file joins the message's room (or must already be in it): see FileStore.attach.
        file = await this.files.attach(body.file.id, body.room, m.headers[ChatHeader.verifiedUser]);
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
      append = this.appendAtOwner(
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
    // The writer (owner, or this node) has published the message by now; see storeAndPublish.
    const { message, duplicate } = await append;
    // The store keeps one message per (room, clientMsgId): another user's id is not a retry of ours.
    if (duplicate && message.user !== body.user) {
      throw new ChatRequestError(
        ChatFailure.CONFLICT,
        'clientMsgId: already used in this room by another user; send with a new one',
      );
    }
    this.observer?.messageIn(duplicate);
    return { seq: message.seq, id: message.id, ts: message.ts };
  }

  private async history(m: Message<unknown>): Promise<{ epoch: string; messages: ChatMessage[] }> {
    // Nobody waits for the answer (sent without a reply address): do not read the store for it.
    if (!m.replyAddress) return { epoch: this.store.epoch(), messages: [] };
    const body = this.parse(this.schemas.history, m.body);
    const query = {
      limit: body.limit,
      ...(body.afterSeq !== undefined ? { afterSeq: body.afterSeq } : {}),
      ...(body.beforeSeq !== undefined ? { beforeSeq: body.beforeSeq } : {}),
    };
    const messages = await this.atOwner<ChatMessage[]>(
      body.room,
      { op: 'history', room: body.room, query },
      () => this.store.history(body.room, query),
    );
    return { epoch: this.store.epoch(), messages };
  }

  /** What a join sends back of the room: lastSeq, then the messages after `since` or the latest. */
  private async readCatchUp(room: string, since: number | undefined): Promise<CatchUp> {
    // lastSeq first: messages stored meanwhile only make the list longer, never lastSeq stale-high.
    const epoch = this.store.epoch();
    const lastSeq = await this.store.lastSeq(room);
    if (since === undefined) {
      const messages =
        this.limits.joinLatest > 0 ? await this.store.latest(room, this.limits.joinLatest) : [];
      return { epoch, lastSeq, messages, truncated: false };
    }
    const max = this.limits.joinMaxMessages;
    const messages = await this.store.history(room, { afterSeq: since, limit: max + 1 });
    const truncated = messages.length > max;
    return { epoch, lastSeq, messages: truncated ? messages.slice(0, max) : messages, truncated };
  }

  /** Reads forwarded by other nodes for rooms this node owns. */
  private async readOwned(m: Message<unknown>): Promise<CatchUp | ChatMessage[]> {
    const body = m.body as OwnerRead;
    if (typeof body !== 'object' || body === null || typeof body.room !== 'string')
      throw new ChatRequestError(ChatFailure.BAD_REQUEST, 'read: expected {op, room, …}');
    if (body.op === 'join') return this.readCatchUp(body.room, body.since ?? undefined);
    if (body.op === 'history') return this.store.history(body.room, body.query);
    throw new ChatRequestError(ChatFailure.BAD_REQUEST, 'read: op must be join or history');
  }

  /**
   * Runs a read at the room's owner (see readAddress), or here when this node owns the room or the
   * owner is gone. A busy owner gets the client to retry (as for appends); its refusals pass on.
   */
  private async atOwner<T>(room: string, body: OwnerRead, local: () => Promise<T>): Promise<T> {
    const owner = this.ownerOf(room);
    if (owner === undefined || owner === this.bus.nodeId) return local();
    try {
      const reply = await this.bus.request<T>(readAddress(owner), body, { timeout: FORWARD_TIMEOUT_MS });
      return reply.body;
    } catch (err) {
      if (err instanceof ReplyException && err.failureType === 'RECIPIENT_FAILURE')
        throw new ChatRequestError(err.failureCode, err.message);
      if (err instanceof ReplyException && err.failureType === 'TIMEOUT')
        throw new ChatRequestError(ChatFailure.UNAVAILABLE, `room owner ${owner} is busy; retry`);
      return local();
    }
  }

  /** The room's owner among the nodes that take appends (a draining node has stopped to). */
  private ownerOf(room: string): string | undefined {
    return ownerOf(room, this.owners());
  }

  /** The nodes that take appends now; tells onOwnersChanged when they changed. */
  private owners(): string[] {
    const ids = this.cluster
      .nodes()
      .map((n) => n.nodeId)
      .filter((id) => this.cluster.subscribers(appendAddress(id)).includes(id));
    const key = [...ids].sort().join(',');
    if (key !== this.ownersKey) {
      const before = this.ownerIds;
      this.ownersKey = key;
      this.ownerIds = ids;
      // With no owner at all (the cluster out of reach), every node takes every room: nothing
      // was owned throughout such a change.
      const self = this.bus.nodeId;
      this.onOwnersChanged?.(
        (room) => before.length > 0 && ownerOf(room, before) === self && ownerOf(room, ids) === self,
      );
    }
    return ids;
  }

  private async leave(m: Message<unknown>): Promise<{ left: boolean }> {
    const body = this.parse(this.schemas.leave, m.body, m.headers);
    const session = m.headers[ChatHeader.session];
    const left = await this.presence.leave(body.room, body.user, session);
    await this.claims.release(body.room, body.user, session);
    if (left)
      void this.publishPresence(body.room).catch((err: unknown) => this.presenceFailed(body.room, err));
    return { left };
  }

  /** Appends forwarded by other nodes for rooms this node owns (see room-owner.ts). */
  private async appendOwned(m: Message<unknown>): Promise<OwnerAppend> {
    const input = m.body as AppendInput;
    if (typeof input !== 'object' || input === null || typeof input.room !== 'string')
      throw new ChatRequestError(ChatFailure.BAD_REQUEST, 'append: expected {room, user, clientMsgId, …}');
    return { ...(await this.storeAndPublish(input, m.headers[TRACEPARENT])), published: true };
  }

  /**
   * Stores through the room's owner node (one writer per room, no seq conflicts), or here when
   * this node owns it or the owner cannot be reached in time: the unique indexes keep a message
   * once even if both end up writing it. Whichever node stores the message publishes it.
   */
  private async appendAtOwner(input: AppendInput, traceparent: string | undefined): Promise<AppendResult> {
    // Only nodes that take appends: a draining node unregisters first, and every node then agrees
    // on the next owner at once (instead of each falling back to writing the room itself).
    const owner = this.ownerOf(input.room);
    if (owner === undefined || owner === this.bus.nodeId) return this.storeAndPublish(input, traceparent);
    try {
      const reply = await this.bus.request<OwnerAppend>(appendAddress(owner), input, {
        timeout: FORWARD_TIMEOUT_MS,
        ...(traceparent !== undefined ? { headers: { [TRACEPARENT]: traceparent } } : {}),
      });
      const { published, ...result } = reply.body;
      // An owner of an older version (during a rolling upgrade) stores without publishing.
      if (published !== true) this.publishStored(result, traceparent);
      return result;
    } catch (err) {
      // The owner answered: a 4xx is the store refusing the message (the same here), a 503 a store
      // that is down or shedding load, which a second writer here would only load more. Pass it on.
      if (err instanceof ReplyException && err.failureType === 'RECIPIENT_FAILURE') {
        throw new ChatRequestError(err.failureCode, err.message);
      }
      // A slow owner is busy, not gone: writing the room here too would add a second writer and
      // seq conflicts just when the database is the bottleneck. The client retries (503).
      if (err instanceof ReplyException && err.failureType === 'TIMEOUT') {
        throw new ChatRequestError(ChatFailure.UNAVAILABLE, `room owner ${owner} is busy; retry`);
      }
      // The owner is gone; it may have stored the message before dying, unpublished: the store
      // answers "duplicate" then and this node, not having published it, publishes it.
      return this.storeAndPublish(input, traceparent);
    }
  }

  /**
   * Stores a message as the room's writer and publishes it on `chat.room.<room>`. A duplicate
   * (a retried send) is published again unless this node published it: the node that stored it
   * may have died between store and publish, and without this the acked message would stay
   * unseen in a quiet room. Clients drop a seq they hold, so an extra copy is never shown twice.
   * Concurrent appends of one message here share one store call and one publish.
   */
  private storeAndPublish(input: AppendInput, traceparent: string | undefined): Promise<AppendResult> {
    const key = `${input.room}\u0000${input.clientMsgId}`;
    const pending = this.storing.get(key);
    if (pending) return pending.then((r) => ({ ...r, duplicate: true }));
    const phantom = ackAndDropSeq(input.text, () => this.store.lastSeq(input.room));
    if (phantom) {
      return phantom.then((seq) => ({
        message: { ...input, seq, id: randomUUID(), ts: Date.now() },
        duplicate: false,
      }));
    }
    const done = this.store.append(input).then(
      (result) => {
        if (!this.published.has(key)) {
          crashAt('KILL_AFTER_STORE', input.clientMsgId);
          this.publishStored(result, traceparent);
        }
        this.storing.delete(key);
        return result;
      },
      (err: unknown) => {
        this.storing.delete(key);
        throw err;
      },
    );
    this.storing.set(key, done);
    return done;
  }

  /** Publishes a stored message on `chat.room.<room>` and remembers having done so. */
  private publishStored(result: AppendResult, traceparent: string | undefined): void {
    const live = { ...result.message, epoch: this.store.epoch() };
    this.bus.publish(ChatAddress.room(result.message.room), live, {
      headers: { [TRACEPARENT]: childOf(traceparent) },
      ...(publishesHereOnly(result.message.clientMsgId) ? { localOnly: true } : {}),
    });
    this.published.add(`${result.message.room}\u0000${result.message.clientMsgId}`);
    this.positions.published(result.message.room, result.message.seq);
    this.observer?.published();
  }

  // --- helpers ----------------------------------------------------------------------------

  /** Runs a handler and turns its outcome into a reply or a RECIPIENT_FAILURE with a chat code. */
  private handle<T>(fn: (m: Message<unknown>) => Promise<T>) {
    return async (m: Message<unknown>): Promise<void> => {
      this.inFlight += 1;
      try {
        const result = await fn(m);
        if (m.replyAddress) m.reply(result);
      } catch (err) {
        const { code, text } = this.failureOf(err);
        // Shed load is counted in /metrics, not logged: it comes by the thousand while the store is slow.
        if (code >= 500 && !text.startsWith(STORE_BUSY))
          this.log.warn({ address: m.address, err: String(err) }, 'chat request failed');
        if (m.replyAddress) m.fail(code, text);
      } finally {
        this.inFlight -= 1;
      }
    };
  }

  private failureOf(err: unknown): { code: number; text: string } {
    if (err instanceof ChatRequestError) return { code: err.code, text: err.message };
    if (err instanceof StoreError) {
      if (err.code === 'INVALID') return { code: ChatFailure.BAD_REQUEST, text: err.message };
      // Retriable at once-or-later: the client backs off with jitter (messages-lib: isStoreBusy).
      if (err.code === 'BUSY') return { code: ChatFailure.UNAVAILABLE, text: `message ${err.message}` };
      return { code: ChatFailure.UNAVAILABLE, text: `message store unavailable: ${err.message}` };
    }
    return { code: ChatFailure.INTERNAL, text: 'internal error' };
  }

  private parse<T>(schema: z.ZodType<T>, body: unknown, headers?: Record<string, string>): T {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new ChatRequestError(ChatFailure.BAD_REQUEST, 'body: expected a JSON object');
    }
    const verifiedUser = headers?.[ChatHeader.verifiedUser];
    const r = schema.safeParse(
      verifiedUser !== undefined && 'user' in body ? { ...body, user: verifiedUser } : body,
    );
    if (!r.success) throw new ChatRequestError(ChatFailure.BAD_REQUEST, describeIssues(r.error));
    return r.data;
  }

  /** The connection a request speaks for: bridges say so in headers; otherwise the requesting node. */
  private connectionOf(m: Message<unknown>, user: string): { session: string; node: string } {
    const node =
      m.headers[ChatHeader.node] ??
      (m.replyAddress ? nodeOfReplyAddress(m.replyAddress) : undefined) ??
      this.bus.nodeId;
    const session = m.headers[ChatHeader.session] ?? `user:${user}`;
    return { session, node };
  }

  /**
   * Presence is a snapshot, so publishes for a room are coalesced: the first goes out at once, and
   * changes while it is out (and for a pause after it, the longer the bigger the room) are covered
   * by one trailing publish that reads the state then. Without it a room of n users that all
   * (re)join sends n snapshots of n names to n sockets — a reconnect storm of n³ bytes.
   */
  private publishPresence(room: string): Promise<void> {
    if (this.presenceDue.has(room)) {
      this.presenceDue.set(room, true);
      return Promise.resolve();
    }
    this.presenceDue.set(room, false);
    return this.runPresence(room);
  }

  private presenceFailed(room: string, err: unknown): void {
    this.log.warn({ room, err: String(err) }, 'could not publish presence');
  }

  private async runPresence(room: string): Promise<void> {
    let users: string[] = [];
    try {
      users = await this.presence.users(room);
      this.bus.publish(ChatAddress.presence(room), { room, users });
    } catch (err) {
      this.presenceFailed(room, err);
    }
    const pauseMs = Math.min(PRESENCE_MAX_PAUSE_MS, Math.max(PRESENCE_MIN_PAUSE_MS, users.length));
    await new Promise((r) => setTimeout(r, pauseMs).unref());
    const again = this.presenceDue.get(room) === true && this.consumers.length > 0;
    if (!again) {
      this.presenceDue.delete(room);
      return;
    }
    this.presenceDue.set(room, false);
    return this.runPresence(room);
  }

  /** One node (the lowest id still alive) removes a departed node's presence and announces it. */
  private async collectPresence(nodeId: string): Promise<void> {
    const alive = this.cluster
      .nodes()
      .map((n) => n.nodeId)
      .sort();
    if (alive[0] !== this.bus.nodeId) return;
    try {
      const rooms = await this.presence.collect(nodeId);
      await this.claims.collect(nodeId);
      for (const room of rooms) await this.publishPresence(room);
      if (rooms.length > 0)
        this.log.info({ nodeId, rooms: rooms.length }, 'removed presence of a departed node');
    } catch (err) {
      this.log.warn({ nodeId, err: String(err) }, 'could not collect presence of a departed node');
    }
  }
}

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url').slice(0, 22);
}
