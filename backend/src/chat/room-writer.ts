import { randomUUID } from 'node:crypto';
import { Chat } from '@switchboard/protocol';
import type { EventBus } from '../eventbus/types.js';
import type { AppendInput, AppendResult, MessageStore } from '../store/types.js';
import { childOf, TRACEPARENT } from '../trace/trace-context.js';
import { ackAndDropSeq, crashAt, publishesHereOnly } from './fault-points.js';
import { PublishedKeys } from './published-keys.js';

/** How many (room, clientMsgId) keys a node remembers having published (see PublishedKeys). */
const PUBLISHED_KEYS_MAX = 10_000;

export interface RoomWriterOptions {
  bus: Pick<EventBus, 'publish'>;
  store: Pick<MessageStore, 'append' | 'lastSeq' | 'epoch'>;
  /** A message went out on `chat.room.<room>` with this seq (the position check's room top). */
  published: (room: string, seq: number) => void;
}

/**
 * A node as the writer of a room: it stores a message, then publishes it, so that a message is
 * never seen before it is durable. Whichever node stores a message publishes it: the room's owner,
 * or the node that took the send when the owner is gone (see owner-routing.ts).
 */
export class RoomWriter {
  /** Appends this node is storing and publishing as the room's writer, by room and clientMsgId. */
  private readonly storing = new Map<string, Promise<AppendResult>>();
  private readonly published = new PublishedKeys(PUBLISHED_KEYS_MAX);

  constructor(private readonly opts: RoomWriterOptions) {}

  /**
   * Stores a message as the room's writer and publishes it on `chat.room.<room>`. A duplicate
   * (a retried send) is published again unless this node published it: the node that stored it
   * may have died between store and publish, and without this the acked message would stay
   * unseen in a quiet room. Clients drop a seq they hold, so an extra copy is never shown twice.
   * Concurrent appends of one message here share one store call and one publish.
   */
  storeAndPublish(input: AppendInput, traceparent: string | undefined): Promise<AppendResult> {
    const { store } = this.opts;
    const key = `${input.room}\u0000${input.clientMsgId}`;
    const pending = this.storing.get(key);
    if (pending) return pending.then((r) => ({ ...r, duplicate: true }));
    const phantom = ackAndDropSeq(input.text, () => store.lastSeq(input.room));
    if (phantom) {
      return phantom.then((seq) => ({
        message: { ...input, seq, id: randomUUID(), ts: Date.now() },
        duplicate: false,
      }));
    }
    const done = store.append(input).then(
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
  publishStored(result: AppendResult, traceparent: string | undefined): void {
    const live = { ...result.message, epoch: this.opts.store.epoch() };
    this.opts.bus.publish(Chat.room(result.message.room), live, {
      headers: { [TRACEPARENT]: childOf(traceparent) },
      ...(publishesHereOnly(result.message.clientMsgId) ? { localOnly: true } : {}),
    });
    this.published.add(`${result.message.room}\u0000${result.message.clientMsgId}`);
    this.opts.published(result.message.room, result.message.seq);
  }
}
