import type { NodeInfo } from './types.js';

/** A subscription registry event: `nodeId` undefined when the event did not carry it. */
export interface SubscriptionEvent {
  add: boolean;
  address: string;
  nodeId: string | undefined;
}

/**
 * The local copy of the subscription registry: address → node ids, as the registry says
 * (including nodes that may have died), fed by the registry's events and replaced by snapshots.
 */
export class SubscriptionCache {
  private readonly subs = new Map<string, Set<string>>();
  /**
   * Subscription events that arrived while a snapshot was being read. The snapshot replaces the
   * cache, so without replaying these an event that raced the read (a peer subscribing while we
   * join) would be wiped out and the peer never routed to.
   */
  private journal: SubscriptionEvent[] | undefined;

  nodesAt(address: string): ReadonlySet<string> | undefined {
    return this.subs.get(address);
  }

  /** Every node id of every address (a node once per address it is subscribed at). */
  *nodeIds(): Generator<string> {
    for (const nodes of this.subs.values()) yield* nodes;
  }

  addressesOf(nodeId: string): string[] {
    return [...this.subs].filter(([, nodes]) => nodes.has(nodeId)).map(([a]) => a);
  }

  /** A registry event: applied, and kept for the snapshot being read meanwhile, if any. */
  apply(add: boolean, address: string, nodeId: string | undefined): void {
    this.journal?.push({ add, address, nodeId });
    if (add) this.add(address, nodeId!);
    else this.remove(address, nodeId);
  }

  add(address: string, nodeId: string): void {
    let nodes = this.subs.get(address);
    if (!nodes) {
      nodes = new Set();
      this.subs.set(address, nodes);
    }
    nodes.add(nodeId);
  }

  remove(address: string, nodeId: string | undefined): void {
    if (nodeId === undefined) return;
    const nodes = this.subs.get(address);
    if (!nodes) return;
    nodes.delete(nodeId);
    if (nodes.size === 0) this.subs.delete(address);
  }

  clear(): void {
    this.subs.clear();
  }

  /** Starts keeping events for a snapshot about to be read; `endJournal` stops. */
  beginJournal(): SubscriptionEvent[] {
    const journal: SubscriptionEvent[] = [];
    this.journal = journal;
    return journal;
  }

  endJournal(journal: SubscriptionEvent[]): void {
    if (this.journal === journal) this.journal = undefined;
  }

  /**
   * Replaces the cache with a snapshot of the registry, then replays the events `journal` kept
   * while it was read. Node `selfId`'s entries are `ownAddresses`, whatever the snapshot says.
   */
  replace(
    snapshot: Array<[string, string]>,
    selfId: string | undefined,
    ownAddresses: ReadonlySet<string>,
    journal: readonly SubscriptionEvent[],
  ): void {
    const fresh = new Map<string, Set<string>>();
    for (const [address, nodeId] of snapshot) {
      if (nodeId === selfId) continue; // ours come from ownAddresses, below
      let set = fresh.get(address);
      if (!set) fresh.set(address, (set = new Set()));
      set.add(nodeId);
    }
    // Our own subscriptions are ours to know, whatever the snapshot says.
    if (selfId) {
      for (const address of ownAddresses) {
        let set = fresh.get(address);
        if (!set) fresh.set(address, (set = new Set()));
        set.add(selfId);
      }
    }
    this.subs.clear();
    for (const [address, set] of fresh) this.subs.set(address, set);
    // Events are applied in the order they came; a replay of one the snapshot already holds is a no-op.
    for (const e of journal) {
      if (e.add && e.nodeId !== undefined) this.add(e.address, e.nodeId);
      else if (!e.add) this.remove(e.address, e.nodeId);
    }
  }
}

/** A lease's value: the node's NodeInfo as JSON (undefined for anything else). */
export function parseNode(value: string | undefined): NodeInfo | undefined {
  if (typeof value !== 'string') return undefined;
  try {
    const v = JSON.parse(value) as Partial<NodeInfo>;
    if (typeof v.nodeId === 'string' && typeof v.host === 'string' && typeof v.port === 'number') {
      return { nodeId: v.nodeId, host: v.host, port: v.port };
    }
  } catch {
    // not ours
  }
  return undefined;
}
