/**
 * Appends waiting per room: one write in flight per room, so that the process never races itself
 * for seqs; what is queued for the room meanwhile goes out in the next batch (group commit). Also
 * counts the appends not yet settled, for flush().
 */
import type { AppendInput, AppendResult } from '../types.js';
import type { StoreLogger } from './options.js';

/** One append waiting for its outcome. */
export interface Pending {
  input: AppendInput;
  resolve(result: AppendResult): void;
  reject(err: unknown): void;
}

interface RoomQueue {
  items: Pending[];
}

export class AppendQueues {
  private readonly queues = new Map<string, RoomQueue>();
  private pending = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    /** Most appends per batch: maxBatch with batching on, 1 with it off. */
    private readonly batchSize: number,
    /** Stores one batch of one room; settles every caller and never throws. */
    private readonly writeBatch: (room: string, batch: Pending[]) => Promise<void>,
    private readonly log: StoreLogger,
  ) {}

  /** Queues a checked append behind the room's write in flight, if any. */
  add(checked: AppendInput): Promise<AppendResult> {
    return new Promise<AppendResult>((resolve, reject) => {
      this.pending++;
      let settled = false;
      const done = (): void => {
        settled = true;
        // After the callers' own continuations: flush() means "their outcomes are known".
        if (--this.pending === 0) setImmediate(() => this.wakeIdleWaiters());
      };
      const item: Pending = {
        input: checked,
        resolve: (r) => {
          if (settled) return;
          resolve(r);
          done();
        },
        reject: (e) => {
          if (settled) return;
          reject(e);
          done();
        },
      };
      const queue = this.queues.get(checked.room);
      if (queue) {
        queue.items.push(item);
        return;
      }
      const fresh: RoomQueue = { items: [item] };
      this.queues.set(checked.room, fresh);
      // One macrotask of waiting lets the appends of this tick share the first write.
      setImmediate(() => {
        void this.drainRoom(checked.room, fresh).catch((err: unknown) =>
          this.log.warn(
            { room: checked.room, err: String(err) },
            'message store: writing the appends of a room failed',
          ),
        );
      });
    });
  }

  /** Resolves once every append accepted so far has settled. */
  flush(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wakeIdleWaiters(): void {
    if (this.pending === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private async drainRoom(room: string, queue: RoomQueue): Promise<void> {
    while (queue.items.length > 0) {
      const batch = queue.items.splice(0, this.batchSize);
      await this.writeBatch(room, batch);
    }
    this.queues.delete(room);
  }
}
