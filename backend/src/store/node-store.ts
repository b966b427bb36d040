/**
 * The store as a node uses it: the recent tail (recent-tail.ts) in front of load shedding
 * (load-shed.ts) in front of the database store. Reads the tail answers never reach the shedder,
 * so they keep working while the database is slow; everything else is bounded by it.
 */
import { LoadSheddingStore } from './load-shed.js';
import { RecentTailStore } from './recent-tail.js';
import type { MessageStore } from './types.js';

export interface NodeStoreOptions {
  /** STORE_TAIL_MESSAGES: newest messages kept in memory per owned room (0: none). */
  tailMessagesPerRoom: number;
  /** STORE_TAIL_MB, in bytes: memory for all tails of the node (least recently used rooms out). */
  tailBytesPerNode: number;
  /** STORE_MAX_IN_FLIGHT: store calls out at once. */
  maxInFlight: number;
  /** STORE_SLOW_MS: a call out longer than this marks the store degraded (new calls refused). */
  slowMs: number;
}

export interface NodeStore {
  /** The outermost layer: what the chat service uses. */
  store: MessageStore;
  tail: RecentTailStore;
  shed: LoadSheddingStore;
}

export function layerNodeStore(base: MessageStore, opts: NodeStoreOptions): NodeStore {
  const shed = new LoadSheddingStore(base, { maxInFlight: opts.maxInFlight, slowMs: opts.slowMs });
  const tail = new RecentTailStore(shed, {
    perRoom: opts.tailMessagesPerRoom,
    perNodeBytes: opts.tailBytesPerNode,
  });
  return { store: tail, tail, shed };
}
