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
  /** True while the manager can reach its registry (readiness). */
  isConnected(): boolean;
  on(event: ClusterEvent, listener: (nodeId: string) => void): void;
}
