import { type ChatLimits, ChatFailure } from '@switchboard/protocol';
import type { EventBus, Message } from '../eventbus/types.js';
import { ReplyException } from '../eventbus/failures.js';
import type { AppendInput, AppendResult, ChatMessage, HistoryQuery, MessageStore } from '../store/types.js';
import { TRACEPARENT } from '../trace/trace-context.js';
import type { Membership } from './chat-cluster.js';
import { ChatRequestError } from './requests.js';
import { appendAddress, ownerOf, readAddress } from './room-owner.js';
import type { RoomWriter } from './room-writer.js';

/** How long a forwarded append or read may take before the client is asked to retry. */
export const FORWARD_TIMEOUT_MS = 10_000;

/** An owner's answer to a forwarded append: `published` once it has published the message itself. */
type OwnerAppend = AppendResult & { published?: boolean };

/** A join's catch-up as read at the room's owner. */
export interface CatchUp {
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

export interface OwnerRoutingOptions {
  bus: Pick<EventBus, 'nodeId' | 'request'>;
  membership: Pick<Membership, 'nodes' | 'subscribers'>;
  store: Pick<MessageStore, 'epoch' | 'lastSeq' | 'latest' | 'history'>;
  limits: Pick<ChatLimits, 'joinLatest' | 'joinMaxMessages'>;
  writer: RoomWriter;
  /** See ChatServiceOptions.onOwnersChanged; `ownerNow` is the room's owner after the change. */
  onOwnersChanged?: (
    ownedThroughout: (room: string) => boolean,
    ownerNow: (room: string) => string | undefined,
  ) => void;
  /** How often the owner set is checked without a request asking. */
  ownersCheckMs: number;
}

/**
 * One writer (and reader) per room: appends and reads go to the room's owner node (room-owner.ts),
 * and the owner answers them on its own `chat.append.<node>` / `chat.read.<node>` addresses. Each
 * method falls back to doing the work on this node when it owns the room or the owner is gone.
 */
export class OwnerRouting {
  /** The owner nodes as last seen, to notice a change. */
  private ownersKey = '';
  private ownerIds: readonly string[] = [];
  private ownersTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: OwnerRoutingOptions) {}

  /** Checks the owner set every ownersCheckMs, until stopWatching(). */
  watchOwners(): void {
    // A room may move to a node and back between two requests here: each move must be seen, or a
    // tail kept across it would miss what the other owner stored meanwhile.
    this.ownersTimer = setInterval(() => this.owners(), this.opts.ownersCheckMs);
    this.ownersTimer.unref();
  }

  stopWatching(): void {
    clearInterval(this.ownersTimer);
  }

  /** The room's owner once this node stops taking appends (a drain's handover goes there). */
  successorOf(room: string): string | undefined {
    const self = this.opts.bus.nodeId;
    return ownerOf(
      room,
      this.owners().filter((id) => id !== self),
    );
  }

  /** Whether this node is the room's owner now (or no node is: a single node owns everything). */
  ownsRoom(room: string): boolean {
    const owner = this.ownerOf(room);
    return owner === undefined || owner === this.opts.bus.nodeId;
  }

  /** A join's catch-up (lastSeq, then the messages after `since` or the latest), read at the owner. */
  catchUp(room: string, since: number | undefined): Promise<CatchUp> {
    return this.atOwner<CatchUp>(room, { op: 'join', room, since }, () => this.readCatchUp(room, since));
  }

  /** A page of the room's history, read at the owner. */
  history(room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    return this.atOwner<ChatMessage[]>(room, { op: 'history', room, query }, () =>
      this.opts.store.history(room, query),
    );
  }

  /**
   * Stores through the room's owner node (one writer per room, no seq conflicts), or here when
   * this node owns it or the owner cannot be reached in time: the unique indexes keep a message
   * once even if both end up writing it. Whichever node stores the message publishes it.
   */
  async append(input: AppendInput, traceparent: string | undefined): Promise<AppendResult> {
    const { bus, writer } = this.opts;
    // Only nodes that take appends: a draining node unregisters first, and every node then agrees
    // on the next owner at once (instead of each falling back to writing the room itself).
    const owner = this.ownerOf(input.room);
    if (owner === undefined || owner === bus.nodeId) return writer.storeAndPublish(input, traceparent);
    try {
      const reply = await bus.request<OwnerAppend>(appendAddress(owner), input, {
        timeout: FORWARD_TIMEOUT_MS,
        ...(traceparent !== undefined ? { headers: { [TRACEPARENT]: traceparent } } : {}),
      });
      const { published, ...result } = reply.body;
      // An owner of an older version (during a rolling upgrade) stores without publishing.
      if (published !== true) writer.publishStored(result, traceparent);
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
      return writer.storeAndPublish(input, traceparent);
    }
  }

  /** Appends forwarded by other nodes for rooms this node owns (on appendAddress). */
  async appendOwned(m: Message<unknown>): Promise<OwnerAppend> {
    const input = m.body as AppendInput;
    if (typeof input !== 'object' || input === null || typeof input.room !== 'string')
      throw new ChatRequestError(ChatFailure.BAD_REQUEST, 'append: expected {room, user, clientMsgId, …}');
    return { ...(await this.opts.writer.storeAndPublish(input, m.headers[TRACEPARENT])), published: true };
  }

  /** Reads forwarded by other nodes for rooms this node owns (on readAddress). */
  async readOwned(m: Message<unknown>): Promise<CatchUp | ChatMessage[]> {
    const body = m.body as OwnerRead;
    if (typeof body !== 'object' || body === null || typeof body.room !== 'string')
      throw new ChatRequestError(ChatFailure.BAD_REQUEST, 'read: expected {op, room, …}');
    if (body.op === 'join') return this.readCatchUp(body.room, body.since ?? undefined);
    if (body.op === 'history') return this.opts.store.history(body.room, body.query);
    throw new ChatRequestError(ChatFailure.BAD_REQUEST, 'read: op must be join or history');
  }

  /** The nodes that take appends now; tells onOwnersChanged when they changed. */
  private owners(): string[] {
    const { membership } = this.opts;
    const ids = membership
      .nodes()
      .map((n) => n.nodeId)
      .filter((id) => membership.subscribers(appendAddress(id)).includes(id));
    const key = [...ids].sort().join(',');
    if (key !== this.ownersKey) {
      const before = this.ownerIds;
      this.ownersKey = key;
      this.ownerIds = ids;
      // With no owner at all (the cluster out of reach), every node takes every room: nothing
      // was owned throughout such a change.
      const self = this.opts.bus.nodeId;
      this.opts.onOwnersChanged?.(
        (room) => before.length > 0 && ownerOf(room, before) === self && ownerOf(room, ids) === self,
        (room) => ownerOf(room, ids),
      );
    }
    return ids;
  }

  /** The room's owner among the nodes that take appends (a draining node has stopped to). */
  private ownerOf(room: string): string | undefined {
    return ownerOf(room, this.owners());
  }

  /**
   * Runs a read at the room's owner (see readAddress), or here when this node owns the room or the
   * owner is gone. A busy owner gets the client to retry (as for appends); its refusals pass on.
   */
  private async atOwner<T>(room: string, body: OwnerRead, local: () => Promise<T>): Promise<T> {
    const owner = this.ownerOf(room);
    if (owner === undefined || owner === this.opts.bus.nodeId) return local();
    try {
      const reply = await this.opts.bus.request<T>(readAddress(owner), body, { timeout: FORWARD_TIMEOUT_MS });
      return reply.body;
    } catch (err) {
      if (err instanceof ReplyException && err.failureType === 'RECIPIENT_FAILURE')
        throw new ChatRequestError(err.failureCode, err.message);
      if (err instanceof ReplyException && err.failureType === 'TIMEOUT')
        throw new ChatRequestError(ChatFailure.UNAVAILABLE, `room owner ${owner} is busy; retry`);
      return local();
    }
  }

  /** What a join sends back of the room, read from this node's store. */
  private async readCatchUp(room: string, since: number | undefined): Promise<CatchUp> {
    const { store, limits } = this.opts;
    // lastSeq first: messages stored meanwhile only make the list longer, never lastSeq stale-high.
    const epoch = store.epoch();
    const lastSeq = await store.lastSeq(room);
    if (since === undefined) {
      const messages = limits.joinLatest > 0 ? await store.latest(room, limits.joinLatest) : [];
      return { epoch, lastSeq, messages, truncated: false };
    }
    const max = limits.joinMaxMessages;
    const messages = await store.history(room, { afterSeq: since, limit: max + 1 });
    const truncated = messages.length > max;
    return { epoch, lastSeq, messages: truncated ? messages.slice(0, max) : messages, truncated };
  }
}
