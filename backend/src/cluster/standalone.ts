import type {
  ClusterEvent,
  ClusterListener,
  ClusterManager,
  NodeInfo,
  SharedMap,
  SharedMultiMap,
} from './types.js';

/** A cluster of one: the embedded default. Nothing leaves the process. */
export class StandaloneClusterManager implements ClusterManager {
  readonly kind = 'standalone';
  private self: NodeInfo | undefined;
  private readonly addresses = new Set<string>();
  private readonly maps = new Map<string, MemoryMultiMap>();
  private readonly plainMaps = new Map<string, MemoryMap>();

  async join(self: NodeInfo): Promise<void> {
    this.self = self;
  }

  async leave(): Promise<void> {
    this.addresses.clear();
    this.self = undefined;
  }

  async addSubscription(address: string): Promise<void> {
    this.addresses.add(address);
  }

  async removeSubscription(address: string): Promise<void> {
    this.addresses.delete(address);
  }

  subscribers(address: string): readonly string[] {
    return this.self && this.addresses.has(address) ? [this.self.nodeId] : [];
  }

  node(nodeId: string): NodeInfo | undefined {
    return this.self?.nodeId === nodeId ? this.self : undefined;
  }

  nodes(): NodeInfo[] {
    return this.self ? [this.self] : [];
  }

  multiMap(name: string): SharedMultiMap {
    let map = this.maps.get(name);
    if (!map) this.maps.set(name, (map = new MemoryMultiMap()));
    return map;
  }

  map(name: string): SharedMap {
    let map = this.plainMaps.get(name);
    if (!map) this.plainMaps.set(name, (map = new MemoryMap()));
    return map;
  }

  isConnected(): boolean {
    return this.self !== undefined;
  }

  reportUnreachable(): void {
    // A cluster of one: there is no other node to drop.
  }

  on(_event: ClusterEvent, _listener: ClusterListener): () => void {
    // A single node never sees another leave: there is nothing to call, nor to take off.
    return () => {};
  }

  off(_event: ClusterEvent, _listener: ClusterListener): void {}
}

/** The one-process multimap behind the standalone manager. */
export class MemoryMultiMap implements SharedMultiMap {
  private readonly data = new Map<string, Set<string>>();

  async get(key: string): Promise<string[]> {
    return [...(this.data.get(key) ?? [])];
  }

  async put(key: string, value: string): Promise<void> {
    let set = this.data.get(key);
    if (!set) this.data.set(key, (set = new Set()));
    set.add(value);
  }

  async remove(key: string, value: string): Promise<void> {
    const set = this.data.get(key);
    if (!set) return;
    set.delete(value);
    if (set.size === 0) this.data.delete(key);
  }

  async entries(): Promise<[string, string][]> {
    return [...this.data].flatMap(([k, set]) => [...set].map((v): [string, string] => [k, v]));
  }
}

/** The one-process map behind the standalone manager: each call runs to its end before another starts. */
export class MemoryMap implements SharedMap {
  private readonly data = new Map<string, string>();

  async get(key: string): Promise<string | undefined> {
    return this.data.get(key);
  }

  async putIfAbsent(key: string, value: string): Promise<string | undefined> {
    const held = this.data.get(key);
    if (held === undefined) this.data.set(key, value);
    return held;
  }

  async replaceIfSame(key: string, expected: string, value: string): Promise<boolean> {
    if (this.data.get(key) !== expected) return false;
    this.data.set(key, value);
    return true;
  }

  async removeIfSame(key: string, expected: string): Promise<boolean> {
    if (this.data.get(key) !== expected) return false;
    this.data.delete(key);
    return true;
  }

  async entries(): Promise<[string, string][]> {
    return [...this.data];
  }
}
