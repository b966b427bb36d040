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

export type ClusterEvent = 'nodeJoined' | 'nodeLeft' | 'connectionChanged';

/**
 * The cluster manager SPI (as Vert.x's ClusterManager): it knows which nodes are alive and which
 * nodes have consumers for an address. It never carries message bytes; the bus's node transport does.
 * `subscribers` is synchronous on purpose: routing a send must not wait on the registry.
 */
export interface ClusterManager {
  readonly kind: string;
  /** Registers this node (a lease that the manager keeps alive) and starts tracking the cluster. */
  join(self: NodeInfo): Promise<void>;
  /** Removes this node's lease and subscriptions at once (not by expiry) and disconnects. */
  leave(): Promise<void>;
  /** Announces that this node has a cluster-visible consumer for the address. */
  addSubscription(address: string): Promise<void>;
  removeSubscription(address: string): Promise<void>;
  /** Live nodes with a consumer for the address, possibly including this node. */
  subscribers(address: string): readonly string[];
  node(nodeId: string): NodeInfo | undefined;
  nodes(): NodeInfo[];
  /** A named shared multimap; the same name gives the same data on every node. */
  multiMap(name: string): SharedMultiMap;
  /** A named shared map with atomic conditional updates; the same name gives the same data everywhere. */
  map(name: string): SharedMap;
  /** True while the manager can reach its registry (readiness). */
  isConnected(): boolean;
  on(event: ClusterEvent, listener: (nodeId: string) => void): void;
}
