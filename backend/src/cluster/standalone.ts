import type { ClusterEvent, ClusterManager, NodeInfo } from './types.js';

/** A cluster of one: the embedded default. Nothing leaves the process. */
export class StandaloneClusterManager implements ClusterManager {
  readonly kind = 'standalone';
  private self: NodeInfo | undefined;
  private readonly addresses = new Set<string>();

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

  isConnected(): boolean {
    return this.self !== undefined;
  }

  on(_event: ClusterEvent, _listener: (nodeId: string) => void): void {
    // A single node never sees another join or leave.
  }
}
