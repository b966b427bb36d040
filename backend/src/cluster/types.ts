/** Where a node's bus listens for node-to-node frames. */
export interface NodeInfo {
  readonly nodeId: string;
  readonly host: string;
  readonly port: number;
}

/**
 * A cluster-wide multimap of strings (as Vert.x's shared data): services keep small shared state
 * in it, such as who is in a room. Values are sets per key: putting a value twice keeps one.
 */
export interface SharedMultiMap {
  get(key: string): Promise<string[]>;
  put(key: string, value: string): Promise<void>;
  remove(key: string, value: string): Promise<void>;
  entries(): Promise<[string, string][]>;
}

/**
 * A cluster-wide map of strings with atomic conditional updates (as Hazelcast's IMap): for state
 * that must have one winner, such as who holds a name in a room.
 */
export interface SharedMap {
  get(key: string): Promise<string | undefined>;
  /** Puts the value unless the key holds one, atomically; returns the value held before, if any. */
  putIfAbsent(key: string, value: string): Promise<string | undefined>;
  /** Replaces `expected` by `value` atomically; false (nothing changed) if the key holds anything else. */
  replaceIfSame(key: string, expected: string, value: string): Promise<boolean>;
  /** Removes the key if it holds `expected`, atomically. */
  removeIfSame(key: string, expected: string): Promise<boolean>;
  entries(): Promise<[string, string][]>;
}

/**
 * What a cluster manager tells its listeners. `nodeLeft` (another node left or was dropped, e.g.
 * its lease lapsed) is the only one: the bus fails requests waiting on that node and forgets its
 * link, ChatService collects its presence and name claims. When it fires, the node is already
 * out of `nodes()`, `node()` and `subscribers()`. It fires once per departure, never about this
 * node itself, and never once this node has left.
 */
export type ClusterEvent = 'nodeLeft';

export type ClusterListener = (nodeId: string) => void;

/**
 * The cluster manager SPI (as Vert.x's ClusterManager): it knows which nodes are alive and which
 * nodes have consumers for an address. It never carries message bytes; the bus's node transport does.
 * `subscribers` is synchronous on purpose: routing a send must not wait on the registry.
 *
 * tests/contract/cluster-manager.contract.ts is the contract every implementation passes.
 */
export interface ClusterManager {
  readonly kind: string;
  /** Registers this node (a lease that the manager keeps alive) and starts tracking the cluster. */
  join(self: NodeInfo): Promise<void>;
  /**
   * Removes this node's lease and subscriptions at once (not by expiry) and disconnects. Once it
   * resolves, the manager is not connected, lists no node and no subscriber, and calls no listener.
   * Leaving twice, or before joining, does nothing.
   */
  leave(): Promise<void>;
  /** Announces that this node has a cluster-visible consumer for the address (once per address). */
  addSubscription(address: string): Promise<void>;
  removeSubscription(address: string): Promise<void>;
  /**
   * Live nodes with a consumer for the address, possibly including this node (as soon as its own
   * add or remove resolved). A snapshot: later changes do not show in it.
   */
  subscribers(address: string): readonly string[];
  node(nodeId: string): NodeInfo | undefined;
  /** Live nodes, this one included; a snapshot. */
  nodes(): NodeInfo[];
  /** A named shared multimap; the same name gives the same data on every node. */
  multiMap(name: string): SharedMultiMap;
  /** A named shared map with atomic conditional updates; the same name gives the same data everywhere. */
  map(name: string): SharedMap;
  /** True while the manager can reach its registry (readiness). */
  isConnected(): boolean;
  /**
   * This node found `nodeId`'s process gone (its bus port refused a connection): drops it from
   * routing at once (`nodeLeft`, as for a lapsed lease) and removes its lease from the registry so
   * that the others drop it too, instead of everyone waiting for the lease to lapse. A node
   * reported wrongly is alive and puts its lease and subscriptions back on its next refresh. Does
   * nothing for this node itself or a node it does not know.
   */
  reportUnreachable(nodeId: string, reason: string): void;
  /**
   * Calls `listener` on `event` until it is taken off, by the returned function or by `off`. A
   * listener that throws does not keep the others from the event.
   */
  on(event: ClusterEvent, listener: ClusterListener): () => void;
  off(event: ClusterEvent, listener: ClusterListener): void;
}
