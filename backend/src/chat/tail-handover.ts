/**
 * Handing rooms over on drain: a draining owner gives each of its rooms' next owners the recent
 * tail it holds, so that they take the rooms over warm instead of each reading the room's tail
 * from the database in the middle of a reconnect wave (issue 20). The same when rooms move for
 * another reason (a node joins): `handOverMoved`, in one step for a room with no append under
 * way here, in the two below (the second once those appends are answered) for one with some.
 *
 * Two steps, because the owner keeps writing until its append consumers are gone:
 * 1. `announce()`, before the drain stops the chat consumers: each tail's newest messages go to the
 *    room's successor (the owner among the nodes that take appends, this one left out), which
 *    holds them aside and, on the room's first use, waits for step 2 rather than read the store.
 * 2. `complete()`, once the requests in flight are answered: what this node stored after the
 *    announced part goes to the same successor, which installs the whole tail.
 * Anything missing (a lost message, a node that died, a tail that changed hands) only costs the
 * successor what it costs today: one read of the room's tail, after at most `waitMs`.
 *
 * The handover addresses are node-to-node only: the bridges' permissions name the client
 * addresses and no `chat.handover.*`.
 */
import type { EventBus, Message, MessageConsumer } from '../eventbus/types.js';
import type { ChatMessage } from '../store/types.js';

/** Where node `nodeId` takes handed-over tails. */
export function handoverAddress(nodeId: string): string {
  return `chat.handover.${nodeId}`;
}

/** What the recent-tail store offers for handovers (store/recent-tail.ts). */
export interface HandoverTails {
  /** With `moved`: only those rooms. `busy`: appends to the room under way here. */
  handoverSnapshot(
    perRoom: number,
    maxBytes: number,
    moved?: (room: string) => boolean,
  ): { room: string; messages: ChatMessage[]; busy: boolean }[];
  tailAfter(room: string, after: number): ChatMessage[] | undefined;
  /** What the appends to `room` under way here store, once done (undefined: one failed). */
  storedByAppendsUnderWay(room: string): Promise<ChatMessage[] | undefined>;
  expectHandover(room: string, messages: ChatMessage[], waitMs: number): void;
  completeHandover(room: string, more: ChatMessage[] | undefined): void;
}

type HandoverBody =
  | { step: 'announce'; epoch: string; room: string; messages: ChatMessage[] }
  | { step: 'complete'; epoch: string; room: string; more: ChatMessage[] | null };

export interface TailHandoverOptions {
  bus: Pick<EventBus, 'nodeId' | 'send' | 'consumer'>;
  tails: HandoverTails;
  /** The room's owner once this node stops taking appends (undefined: none, or this node). */
  successorOf: (room: string) => string | undefined;
  /** The store's epoch: a tail from a store with another history is not taken. */
  epoch: () => string;
  /** Newest messages handed over per room. Default 100. */
  perRoom?: number;
  /** Estimated bytes handed over in all. Default 16 MiB. */
  maxBytes?: number;
  /** How long a successor's first use of a room waits for the handover to complete. Default 1 s. */
  waitMs?: number;
  log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

/** What `announce()` sent, for `complete()`. */
export interface HandoverPlan {
  rooms: { room: string; to: string; last: number }[];
}

export class TailHandover {
  private consumer: MessageConsumer | undefined;
  /** Set by announce(): the drain hands every room over itself. */
  private draining = false;

  constructor(private readonly opts: TailHandoverOptions) {}

  /** Takes handovers addressed to this node. */
  async start(): Promise<void> {
    this.consumer = this.opts.bus.consumer(handoverAddress(this.opts.bus.nodeId), (m) => this.receive(m));
    await this.consumer.completion;
  }

  async stop(): Promise<void> {
    await this.consumer?.unregister();
    this.consumer = undefined;
  }

  /** Step 1: each held tail's newest messages to the room's successor. */
  announce(): HandoverPlan {
    this.draining = true;
    const { bus, tails, successorOf, epoch } = this.opts;
    const plan: HandoverPlan = { rooms: [] };
    for (const { room, messages } of tails.handoverSnapshot(
      this.opts.perRoom ?? 100,
      this.opts.maxBytes ?? 16 * 1024 * 1024,
    )) {
      const to = successorOf(room);
      if (to === undefined || to === bus.nodeId) continue;
      if (!this.post(to, { step: 'announce', epoch: epoch(), room, messages })) continue;
      plan.rooms.push({ room, to, last: messages.at(-1)?.seq ?? 0 });
    }
    if (plan.rooms.length > 0) {
      this.opts.log.info(
        { rooms: plan.rooms.length },
        'drain: recent tails announced to the rooms’ next owners',
      );
    }
    return plan;
  }

  /** Step 2: what was stored after the announced part, once nothing is in flight here. */
  complete(plan: HandoverPlan): void {
    const { tails, epoch } = this.opts;
    for (const { room, to, last } of plan.rooms) {
      this.post(to, { step: 'complete', epoch: epoch(), room, more: tails.tailAfter(room, last) ?? null });
    }
  }

  /**
   * The owners changed and rooms moved from this node to `movedTo(room)` (a node joined, or this
   * one is no longer among the owners): their tails go there. This node takes no more appends
   * into those rooms (it no longer owns them), so a tail is the room's recent history as of now,
   * plus what the appends already under way here store: a room with none is announced and
   * completed at once; one with some is completed when they are done (at most `waitMs` / 2, after
   * which its new owner reads the store).
   */
  handOverMoved(movedTo: (room: string) => string | undefined): void {
    if (this.draining) return;
    const { tails, epoch } = this.opts;
    const waitMs = this.opts.waitMs ?? 1_000;
    let rooms = 0;
    let busy = 0;
    for (const handed of tails.handoverSnapshot(
      this.opts.perRoom ?? 100,
      this.opts.maxBytes ?? 16 * 1024 * 1024,
      (room) => movedTo(room) !== undefined,
    )) {
      const { room, messages } = handed;
      const to = movedTo(room)!;
      if (!this.post(to, { step: 'announce', epoch: epoch(), room, messages })) continue;
      rooms++;
      if (!handed.busy) {
        this.post(to, { step: 'complete', epoch: epoch(), room, more: [] });
        continue;
      }
      busy++;
      const last = messages.at(-1)?.seq ?? 0;
      const complete = (more: ChatMessage[] | null) =>
        this.post(to, { step: 'complete', epoch: epoch(), room, more });
      withinMs(tails.storedByAppendsUnderWay(room), waitMs / 2).then(
        (stored) => complete(stored?.filter((m) => m.seq > last) ?? null),
        () => complete(null),
      );
    }
    if (rooms > 0)
      this.opts.log.info({ rooms, busy }, 'owners changed: recent tails handed to the rooms’ new owners');
  }

  private post(to: string, body: HandoverBody): boolean {
    try {
      this.opts.bus.send(handoverAddress(to), body);
      return true;
    } catch (err) {
      // Too big for the bus, or the node already gone: the successor reads the store.
      this.opts.log.warn({ to, room: body.room, err: String(err) }, 'could not hand a recent tail over');
      return false;
    }
  }

  private receive(m: Message<unknown>): void {
    const body = m.body as Partial<HandoverBody> | null;
    if (typeof body !== 'object' || body === null || typeof body.room !== 'string') return;
    if (body.epoch !== this.opts.epoch()) return; // another history: nothing in it applies here
    if (body.step === 'announce' && Array.isArray(body.messages)) {
      this.opts.tails.expectHandover(body.room, body.messages, this.opts.waitMs ?? 1_000);
    } else if (body.step === 'complete' && (body.more === null || Array.isArray(body.more))) {
      this.opts.tails.completeHandover(body.room, body.more ?? undefined);
    }
  }
}

/** `p`'s value, or undefined if it takes longer than `ms`. */
function withinMs<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
    timer.unref();
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
