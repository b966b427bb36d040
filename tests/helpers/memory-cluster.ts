import { EventEmitter } from 'node:events';
import { MemoryMap, MemoryMultiMap } from '../../backend/src/cluster/standalone.js';
import type {
  ClusterEvent,
  ClusterManager,
  NodeInfo,
  SharedMap,
  SharedMultiMap,
} from '../../backend/src/cluster/types.js';

/** An in-memory registry shared by several cluster managers in one process: unit tests only. */
export class MemoryRegistry {
  readonly nodes = new Map<string, NodeInfo>();
  readonly subs = new Map<string, Set<string>>();
  readonly events = new EventEmitter();
  readonly maps = new Map<string, MemoryMultiMap>();
  readonly plainMaps = new Map<string, MemoryMap>();

  manager(): ClusterManager {
    return new MemoryClusterManager(this);
  }

  /** Simulates a lease expiry: the node vanishes from everyone's view. */
  expire(nodeId: string): void {
    this.nodes.delete(nodeId);
    for (const set of this.subs.values()) set.delete(nodeId);
    this.events.emit('nodeLeft', nodeId);
  }
}

class MemoryClusterManager implements ClusterManager {
  readonly kind = 'memory';
  private self: NodeInfo | undefined;
  constructor(private readonly registry: MemoryRegistry) {}

  async join(self: NodeInfo): Promise<void> {
    this.self = self;
    this.registry.nodes.set(self.nodeId, self);
    this.registry.events.emit('nodeJoined', self.nodeId);
  }
  async leave(): Promise<void> {
    if (this.self) this.registry.expire(this.self.nodeId);
  }
  async addSubscription(address: string): Promise<void> {
    let set = this.registry.subs.get(address);
    if (!set) this.registry.subs.set(address, (set = new Set()));
    set.add(this.self!.nodeId);
  }
  async removeSubscription(address: string): Promise<void> {
    this.registry.subs.get(address)?.delete(this.self!.nodeId);
  }
  subscribers(address: string): readonly string[] {
    return [...(this.registry.subs.get(address) ?? [])].filter((n) => this.registry.nodes.has(n));
  }
  node(nodeId: string): NodeInfo | undefined {
    return this.registry.nodes.get(nodeId);
  }
  nodes(): NodeInfo[] {
    return [...this.registry.nodes.values()];
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
    return true;
  }
  on(event: ClusterEvent, listener: (nodeId: string) => void): void {
    this.registry.events.on(event, (id: string) => {
      if (id !== this.self?.nodeId) listener(id);
    });
  }
}
