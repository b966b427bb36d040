import { Chat, type SendRequest } from '@switchboard/protocol';
import { type ChatError, toChatError } from './errors.js';
import type { OutboxEntry } from './outbox.js';
import type { EmitRoomEvent, RoomHost, RoomTransport } from './room-types.js';
import { sendRetryDelay } from './send-retry.js';
import type { SendAck } from './types.js';
import { type Timer, uuid } from './util.js';

/** What a room's outbox sender needs from the room. */
export interface SenderContext {
  readonly room: string;
  readonly host: RoomHost;
  readonly transport: RoomTransport;
  readonly emit: EmitRoomEvent;
  /** Joined on the current connection: sends wait for a join otherwise. */
  joined(): boolean;
}

interface Queued {
  entry: OutboxEntry;
  /** Resolved once the entry is in the outbox storage: no attempt goes out before. */
  stored: boolean;
  resolve?: (ack: SendAck) => void;
  reject?: (err: ChatError) => void;
}

/**
 * A room's outbox: drains it one message at a time, in the order of the calls, each retried with
 * its clientMsgId until the server stores it or refuses it for good.
 */
export class OutboxSender {
  private queue: Queued[];
  private inFlight: { q: Queued } | undefined;
  private sendAttempts = 0;
  /** When the scheduled retry of the outbox's head goes (Date.now() time). */
  private sendRetryAt = 0;
  private sendRetryTimer: Timer | undefined;

  /** `stored`: the room's entries from the outbox storage (a previous session), sent first. */
  constructor(
    private readonly ctx: SenderContext,
    stored: OutboxEntry[],
  ) {
    this.queue = [...stored]
      .sort((a, b) => a.createdAt - b.createdAt)
      .map((entry) => ({ entry, stored: true }));
  }

  /** The entries not yet acked by the server, oldest first. */
  get pending(): readonly OutboxEntry[] {
    return this.queue.map((q) => q.entry);
  }

  enqueue(content: Pick<OutboxEntry, 'text' | 'file'>): Promise<SendAck> {
    const { host } = this.ctx;
    const entry: OutboxEntry = {
      clientMsgId: uuid(),
      room: this.ctx.room,
      user: host.user,
      createdAt: Date.now(),
      ...content,
    };
    try {
      this.ctx.transport.checkFrame(framedSend(entry));
    } catch (err) {
      return Promise.reject(toChatError(err));
    }
    return new Promise<SendAck>((resolve, reject) => {
      const q: Queued = { entry, stored: false, resolve, reject };
      this.queue.push(q); // queued at once, so the order is the order of the calls
      this.ctx.emit('pending', this.pending);
      void host
        .persist(entry)
        .then(() => {
          q.stored = true;
          this.pump();
        })
        .catch((err: unknown) => host.reportError(toChatError(err)));
    });
  }

  /**
   * The server says its store is back (a `retry` control message): a send waiting to be retried
   * goes within `delayMs` instead of at the end of its backoff, whichever comes first. The backoff
   * starts over either way: a send still out when the notice came (one the database's return
   * caught in a driver's retry) may yet fail, and must not wait out a backoff grown during the
   * outage.
   */
  retryWithin(delayMs: number): void {
    this.sendAttempts = 0;
    if (this.sendRetryTimer === undefined || this.sendRetryAt <= Date.now() + delayMs) return;
    clearTimeout(this.sendRetryTimer);
    this.scheduleRetry(delayMs);
  }

  /** A join starts, the connection is lost, or the room stops: the send in flight is void. */
  halt(): void {
    this.inFlight = undefined;
    if (this.sendRetryTimer !== undefined) clearTimeout(this.sendRetryTimer);
    this.sendRetryTimer = undefined;
  }

  /**
   * Empties the outbox for good: each waiting send is rejected with `err`. The entries stay in the
   * storage for a later join of the room, unless `discard`. True when there were any.
   */
  clear(err: ChatError, discard: boolean): boolean {
    const { host } = this.ctx;
    const queued = this.queue;
    this.queue = [];
    for (const q of queued) {
      if (discard) host.unpersist(q.entry.clientMsgId);
      q.reject?.(err);
    }
    if (!discard) host.giveBack(queued.map((q) => q.entry));
    return queued.length > 0;
  }

  /** Sends the head of the outbox when nothing is in flight: one message at a time, in order. */
  pump(): void {
    const { host, emit } = this.ctx;
    if (!this.ctx.joined() || this.inFlight || this.sendRetryTimer !== undefined) return;
    const q = this.queue[0];
    if (!q || !q.stored || !this.ctx.transport.isOpen()) return;
    const attempt = { q };
    this.inFlight = attempt;
    this.ctx.transport.send(sendBody(q.entry)).then(
      (ack) => {
        if (this.inFlight === attempt) this.inFlight = undefined;
        if (!this.remove(q)) return;
        this.sendAttempts = 0;
        host.unpersist(q.entry.clientMsgId);
        q.resolve?.(ack);
        emit('sent', { entry: q.entry, ack });
        emit('pending', this.pending);
        this.pump();
      },
      (err: unknown) => {
        if (this.inFlight !== attempt) return; // the connection was lost meanwhile: resent after rejoin
        this.inFlight = undefined;
        if (!this.queue.includes(q)) return;
        const e = toChatError(err);
        if (e.retryable) {
          if (e.failureType === 'DISCONNECTED') return;
          const delay = sendRetryDelay(e, this.sendAttempts++, host.settings.retry, host.settings.random);
          this.scheduleRetry(delay);
          return;
        }
        // Refused for good (400, 404, 500…): a retry would be refused again.
        this.remove(q);
        this.sendAttempts = 0;
        host.unpersist(q.entry.clientMsgId);
        if (q.reject) q.reject(e);
        else emit('error', e); // an entry from a previous session: nobody awaits it
        emit('sendFailed', { entry: q.entry, error: e });
        emit('pending', this.pending);
        this.pump();
      },
    );
  }

  private scheduleRetry(delayMs: number): void {
    this.sendRetryAt = Date.now() + delayMs;
    this.sendRetryTimer = setTimeout(() => {
      this.sendRetryTimer = undefined;
      this.pump();
    }, delayMs);
  }

  private remove(q: Queued): boolean {
    const i = this.queue.indexOf(q);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    return true;
  }
}

function sendBody(entry: OutboxEntry): SendRequest {
  return {
    room: entry.room,
    user: entry.user,
    clientMsgId: entry.clientMsgId,
    ...(entry.text !== undefined ? { text: entry.text } : {}),
    ...(entry.file !== undefined ? { file: { id: entry.file.id } } : {}),
  };
}

function framedSend(entry: OutboxEntry): object {
  // The reply address is a UUID: the frame measured is the frame sent.
  return { type: 'send', address: Chat.send, body: sendBody(entry), replyAddress: uuid() };
}
