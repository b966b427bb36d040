import { ClusterListeners } from '../../backend/src/cluster/listeners.js';
import { MemoryMap, MemoryMultiMap } from '../../backend/src/cluster/standalone.js';
import type {
  ClusterEvent,
  ClusterListener,
  ClusterManager,
  NodeInfo,
  SharedMap,
  SharedMultiMap,
} from '../../backend/src/cluster/types.js';

/**
 * An in-memory registry shared by several cluster managers in one process: unit tests only.
 * Its managers pass the ClusterManager contract (tests/unit/cluster-manager-memory.test.ts).
 */
export class MemoryRegistry {
  readonly nodes = new Map<string, NodeInfo>();
  readonly subs = new Map<string, Set<string>>();
  readonly maps = new Map<string, MemoryMultiMap>();
  readonly plainMaps = new Map<string, MemoryMap>();
  /** What nodeLeft listeners threw: caught, so that the other listeners are still called. */
  readonly listenerErrors: unknown[] = [];
  /** The managers that have joined and not left, to tell about departures. */
  readonly members = new Set<MemoryClusterManager>();

  manager(): ClusterManager {
    return new MemoryClusterManager(this);
  }

  /** Simulates a lease expiry: the node vanishes from everyone's view, and they are told once. */
  expire(nodeId: string): void {
    for (const set of this.subs.values()) set.delete(nodeId);
    if (!this.nodes.delete(nodeId)) return;
    for (const member of [...this.members]) member.nodeLeft(nodeId);
  }
}

class MemoryClusterManager implements ClusterManager {
  readonly kind = 'memory';
  private self: NodeInfo | undefined;
  private readonly listeners: ClusterListeners;

  constructor(private readonly registry: MemoryRegistry) {
    this.listeners = new ClusterListeners((err) => registry.listenerErrors.push(err));
  }

  async join(self: NodeInfo): Promise<void> {
    this.self = self;
    this.registry.nodes.set(self.nodeId, self);
    this.registry.members.add(this);
  }
  reportUnreachable(nodeId: string): void {
    if (!this.self || nodeId === this.self.nodeId) return;
    this.registry.expire(nodeId);
  }
  async leave(): Promise<void> {
    const self = this.self;
    if (!self) return;
    this.self = undefined;
    this.registry.members.delete(this);
    this.listeners.clear();
    this.registry.expire(self.nodeId);
  }
  async addSubscription(address: string): Promise<void> {
    const nodeId = this.requireSelf().nodeId;
    let set = this.registry.subs.get(address);
    if (!set) this.registry.subs.set(address, (set = new Set()));
    set.add(nodeId);
  }
  async removeSubscription(address: string): Promise<void> {
    this.registry.subs.get(address)?.delete(this.requireSelf().nodeId);
  }
  subscribers(address: string): readonly string[] {
    if (!this.self) return [];
    return [...(this.registry.subs.get(address) ?? [])].filter((n) => this.registry.nodes.has(n));
  }
  node(nodeId: string): NodeInfo | undefined {
    return this.self ? this.registry.nodes.get(nodeId) : undefined;
  }
  nodes(): NodeInfo[] {
    return this.self ? [...this.registry.nodes.values()] : [];
  }
  multiMap(name: string): SharedMultiMap {
    let map = this.registry.maps.get(name);
    if (!map) this.registry.maps.set(name, (map = new MemoryMultiMap()));
    return map;
  }
  map(name: string): SharedMap {
    let map = this.registry.plainMaps.get(name);
    if (!map) this.registry.plainMaps.set(name, (map = new MemoryMap()));
    return map;
  }
  isConnected(): boolean {
    return this.self !== undefined;
  }
  on(event: ClusterEvent, listener: ClusterListener): () => void {
    return this.listeners.on(event, listener);
  }
  off(event: ClusterEvent, listener: ClusterListener): void {
    this.listeners.off(event, listener);
  }

  /** Called by the registry when another node has gone. */
  nodeLeft(nodeId: string): void {
    if (nodeId !== this.self?.nodeId) this.listeners.emit('nodeLeft', nodeId);
  }

  private requireSelf(): NodeInfo {
    if (!this.self) throw new Error('the cluster manager has not joined');
    return this.self;
  }
}
