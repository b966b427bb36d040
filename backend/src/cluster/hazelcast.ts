import { type EntryEvent, type IMap, LifecycleState, type MultiMap } from 'hazelcast-client';
import { type ClusterLogger, connectHazelcast, type HazelcastClient, noLog } from './hazelcast-connection.js';
import { parseNode, SubscriptionCache } from './hazelcast-registry.js';
import { sharedMap, sharedMultiMap } from './hazelcast-shared-maps.js';
import { ClusterListeners } from './listeners.js';
import type {
  ClusterEvent,
  ClusterListener,
  ClusterManager,
  NodeInfo,
  SharedMap,
  SharedMultiMap,
} from './types.js';

export type { ClusterLogger } from './hazelcast-connection.js';

export interface HazelcastClusterOptions {
  /** Member addresses, `host:port`. */
  members: string[];
  clusterName: string;
  /** A node that has not refreshed its lease for this long is gone. */
  leaseMs: number;
  /** Give up start-up after this long without reaching any member. */
  connectTimeoutMs: number;
  /** Map names, so that several deployments can share one Hazelcast cluster. */
  prefix?: string;
  logger?: ClusterLogger;
}

/** A survivor collecting a dead node's subscriptions does not wait for another doing the same. */
const COLLECT_LOCK_WAIT_MS = 0;
/** Frees the lease key if a collector stalls: the node it locked out can refresh its lease again. */
const COLLECT_LOCK_LEASE_MS = 10_000;

interface KnownNode {
  info: NodeInfo;
  lastSeen: number;
}

/**
 * Cluster manager on Hazelcast. Node processes are Hazelcast clients, and clients cannot see each
 * other leave, so every node holds a lease (an IMap entry with a TTL that it refreshes) and its
 * subscriptions (a MultiMap address → node id). Each node keeps a local copy of both, fed by entry
 * listeners and reloaded after a reconnect, so routing never waits on Hazelcast. A node whose lease
 * has not been refreshed within `leaseMs` is dropped from routing at once and its subscriptions are
 * removed from the registry by the survivors.
 */
export class HazelcastClusterManager implements ClusterManager {
  readonly kind = 'hazelcast';
  private readonly opts: Required<Omit<HazelcastClusterOptions, 'logger'>>;
  private readonly log: ClusterLogger;
  private readonly listeners: ClusterListeners;
  private client: HazelcastClient | undefined;
  private nodesMap: IMap<string, string> | undefined;
  private subsMap: MultiMap<string, string> | undefined;
  private self: NodeInfo | undefined;
  private connected = false;
  private leaving = false;
  private leftCluster: Promise<void> | undefined;

  private readonly known = new Map<string, KnownNode>();
  private readonly subs = new SubscriptionCache();
  /** Our own subscriptions, the source of truth for re-registration after a lease loss. */
  private readonly ownAddresses = new Set<string>();
  /** Node ids seen in subscriptions without a lease, and since when (to collect stale entries). */
  private readonly orphanSince = new Map<string, number>();
  private refreshTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private resyncing: Promise<void> | undefined;

  constructor(options: HazelcastClusterOptions) {
    this.opts = {
      members: options.members,
      clusterName: options.clusterName,
      leaseMs: options.leaseMs,
      connectTimeoutMs: options.connectTimeoutMs,
      prefix: options.prefix ?? 'switchboard',
    };
    this.log = options.logger ?? noLog;
    this.listeners = new ClusterListeners((err, event) =>
      this.log.warn({ event, err: String(err) }, 'a cluster event listener threw'),
    );
  }

  async join(self: NodeInfo): Promise<void> {
    this.self = self;
    const client = await connectHazelcast(this.opts, self.nodeId, this.log, (state) =>
      this.onLifecycle(state),
    );
    this.client = client;
    this.connected = true;
    this.nodesMap = await client.getMap<string, string>(`${this.opts.prefix}.nodes`);
    this.subsMap = await client.getMultiMap<string, string>(`${this.opts.prefix}.subscriptions`);

    await this.nodesMap.addEntryListener(
      {
        added: (e) => this.onLease(e),
        updated: (e) => this.onLease(e),
        removed: (e) => this.onLeaseGone(e.key, 'removed'),
        expired: (e) => this.onLeaseGone(e.key, 'expired'),
        evicted: (e) => this.onLeaseGone(e.key, 'evicted'),
      },
      undefined,
      true,
    );
    await this.subsMap.addEntryListener(
      {
        added: (e) => this.onSubEvent(true, e.key, e.value),
        removed: (e) => this.onSubEvent(false, e.key, e.oldValue ?? e.value),
      },
      undefined,
      true,
    );
    await this.writeLease();
    this.known.set(self.nodeId, { info: self, lastSeen: Date.now() });
    await this.loadSnapshot();

    const refreshEvery = Math.max(100, Math.floor(this.opts.leaseMs / 3));
    this.refreshTimer = setInterval(() => this.refreshLeaseLater(), refreshEvery);
    this.refreshTimer.unref();
    this.sweepTimer = setInterval(() => this.sweep(), Math.max(100, Math.floor(this.opts.leaseMs / 10)));
    this.sweepTimer.unref();
    this.log.info(
      { nodeId: self.nodeId, members: this.opts.members, leaseMs: this.opts.leaseMs },
      'joined the Hazelcast cluster',
    );
  }

  leave(): Promise<void> {
    // A second call waits for the first: once any leave() resolves, this node has left.
    if (!this.leftCluster && this.client) this.leftCluster = this.disconnect(this.client);
    return this.leftCluster ?? Promise.resolve();
  }

  private async disconnect(client: HazelcastClient): Promise<void> {
    this.leaving = true;
    clearInterval(this.refreshTimer);
    clearInterval(this.sweepTimer);
    const nodeId = this.self?.nodeId;
    if (nodeId && this.connected) {
      // Remove subscriptions before the lease, so nobody routes to a node without a lease.
      await Promise.allSettled(
        [...this.ownAddresses].map((address) => this.subsMap?.remove(address, nodeId)),
      );
      await this.nodesMap?.delete(nodeId).catch(() => {}); // else the lease expires by itself
    }
    this.ownAddresses.clear();
    await client.shutdown().catch(() => {}); // leaving anyway: the client is dropped below
    this.client = undefined;
    this.connected = false;
    // Gone from the cluster, this node routes nowhere and hears nothing more.
    this.known.clear();
    this.subs.clear();
    this.orphanSince.clear();
    this.listeners.clear();
  }

  async addSubscription(address: string): Promise<void> {
    const self = this.requireSelf();
    this.ownAddresses.add(address);
    this.subs.add(address, self.nodeId);
    await this.subsMap!.put(address, self.nodeId);
  }

  async removeSubscription(address: string): Promise<void> {
    const self = this.requireSelf();
    this.ownAddresses.delete(address);
    this.subs.remove(address, self.nodeId);
    await this.subsMap!.remove(address, self.nodeId);
  }

  subscribers(address: string): readonly string[] {
    const nodes = this.subs.nodesAt(address);
    if (!nodes) return [];
    const live: string[] = [];
    for (const nodeId of nodes) if (this.known.has(nodeId)) live.push(nodeId);
    return live;
  }

  node(nodeId: string): NodeInfo | undefined {
    return this.known.get(nodeId)?.info;
  }

  nodes(): NodeInfo[] {
    return [...this.known.values()].map((k) => k.info);
  }

  multiMap(name: string): SharedMultiMap {
    return sharedMultiMap(() => this.client, `${this.opts.prefix}.shared.${name}`);
  }

  map(name: string): SharedMap {
    return sharedMap(() => this.client, `${this.opts.prefix}.shared.map.${name}`);
  }

  isConnected(): boolean {
    return this.connected && !this.leaving;
  }

  on(event: ClusterEvent, listener: ClusterListener): () => void {
    return this.listeners.on(event, listener);
  }

  off(event: ClusterEvent, listener: ClusterListener): void {
    this.listeners.off(event, listener);
  }

  // --- leases -----------------------------------------------------------------------------

  reportUnreachable(nodeId: string, reason: string): void {
    if (this.leaving || !this.connected || nodeId === this.self?.nodeId || !this.known.has(nodeId)) return;
    this.log.warn({ nodeId, reason }, 'node unreachable: dropped before its lease lapses');
    this.dropNode(nodeId, reason);
    // The others drop it on the removal's event; if it is in fact alive, its next refresh finds
    // its lease gone and puts it back with its subscriptions (refreshLease).
    const leases = this.nodesMap;
    if (!leases) return;
    leases
      .delete(nodeId)
      .then(() => this.collectSubscriptionsLater(nodeId))
      .catch((err: unknown) =>
        this.log.warn({ nodeId, err: String(err) }, 'could not remove the lease of an unreachable node'),
      );
  }

  private async writeLease(): Promise<string | null> {
    const self = this.requireSelf();
    return this.nodesMap!.put(self.nodeId, JSON.stringify(self), this.opts.leaseMs);
  }

  private refreshLeaseLater(): void {
    void this.refreshLease().catch((err: unknown) =>
      this.log.warn({ err: String(err) }, 'lease refresh failed; will retry'),
    );
  }

  private async refreshLease(): Promise<void> {
    if (!this.connected || this.leaving) return;
    try {
      const previous = await this.writeLease();
      if (previous === null) {
        // Our lease had expired (we were cut off): others may have collected our subscriptions.
        this.log.warn({ nodeId: this.self?.nodeId }, 'lease had lapsed; re-registering subscriptions');
        await this.reannounce();
      }
    } catch (err) {
      this.log.warn({ err: String(err) }, 'lease refresh failed; will retry');
    }
  }

  private async reannounce(): Promise<void> {
    const nodeId = this.requireSelf().nodeId;
    await Promise.all([...this.ownAddresses].map((address) => this.subsMap!.put(address, nodeId)));
  }

  private onLease(e: EntryEvent<string, string>): void {
    const info = parseNode(e.value);
    if (!info) return;
    if (this.leaving) return;
    this.known.set(info.nodeId, { info, lastSeen: Date.now() });
    this.orphanSince.delete(info.nodeId);
  }

  private onLeaseGone(nodeId: string, why: string): void {
    if (nodeId === this.self?.nodeId) {
      if (!this.leaving) this.refreshLeaseLater();
      return;
    }
    this.dropNode(nodeId, why);
  }

  private dropNode(nodeId: string, why: string): void {
    if (this.leaving || !this.known.delete(nodeId)) return;
    this.log.info({ nodeId, why }, 'node left the cluster');
    this.listeners.emit('nodeLeft', nodeId);
    this.collectSubscriptionsLater(nodeId);
  }

  private collectSubscriptionsLater(nodeId: string): void {
    void this.collectSubscriptions(nodeId).catch((err: unknown) =>
      this.log.warn({ nodeId, err: String(err) }, 'could not remove subscriptions of a dead node'),
    );
  }

  /**
   * Removes a dead node's registry entries; every survivor may do it, removal is idempotent.
   *
   * The lease's key is locked while we check and remove: a node that was only thought dead puts its
   * lease back and then re-announces its subscriptions, and without the lock our removals could land
   * after its re-announcement and leave it alive with no subscriptions, for good. A put of a locked
   * absent key waits for the unlock (Hazelcast IMap.lock), so its re-announcement comes after us.
   */
  private async collectSubscriptions(nodeId: string): Promise<void> {
    if (!this.connected || this.leaving) return;
    const leases = this.nodesMap!;
    let locked = false;
    try {
      locked = await leases.tryLock(nodeId, COLLECT_LOCK_WAIT_MS, COLLECT_LOCK_LEASE_MS);
    } catch {
      return; // cannot tell now: the next sweep asks again
    }
    if (!locked) return; // another survivor is collecting it
    try {
      // Our view may lag (missed events); collect only when the registry agrees the lease is gone.
      if (await leases.containsKey(nodeId)) return;
      const addresses = this.subs.addressesOf(nodeId);
      await Promise.all(addresses.map((address) => this.subsMap!.remove(address, nodeId)));
    } catch (err) {
      this.log.warn({ nodeId, err: String(err) }, 'could not remove subscriptions of a dead node');
    } finally {
      await leases.unlock(nodeId).catch(() => {}); // else its lease time frees it
    }
  }

  /** Drops nodes whose lease was not refreshed in time; collects subscriptions of unknown nodes. */
  private sweep(): void {
    if (!this.connected || this.leaving) return;
    const now = Date.now();
    for (const [nodeId, k] of this.known) {
      if (nodeId === this.self?.nodeId) continue;
      if (now - k.lastSeen > this.opts.leaseMs) this.dropNode(nodeId, 'lease not refreshed');
    }
    for (const nodeId of this.subs.nodeIds()) {
      if (this.known.has(nodeId)) continue;
      const since = this.orphanSince.get(nodeId);
      if (since === undefined) this.orphanSince.set(nodeId, now);
      else if (now - since > this.opts.leaseMs) {
        this.orphanSince.delete(nodeId);
        this.collectSubscriptionsLater(nodeId);
      }
    }
  }

  // --- subscriptions cache ----------------------------------------------------------------

  private onSubEvent(add: boolean, address: string, nodeId: string | undefined): void {
    if (this.leaving) return;
    // Our own subscriptions are applied locally when made; their events arrive later and may be
    // stale (a remove's event landing after the next add would unsubscribe us), so ownAddresses rules.
    if (nodeId !== undefined && nodeId === this.self?.nodeId) return;
    this.subs.apply(add, address, nodeId);
  }

  private async loadSnapshot(): Promise<void> {
    const journal = this.subs.beginJournal();
    let nodes: Array<[string, string]>;
    let subs: Array<[string, string]>;
    try {
      [nodes, subs] = await Promise.all([this.nodesMap!.entrySet(), this.subsMap!.entrySet()]);
    } finally {
      this.subs.endJournal(journal);
    }
    const now = Date.now();
    for (const [, value] of nodes) {
      const info = parseNode(value);
      if (info && !this.known.has(info.nodeId)) this.known.set(info.nodeId, { info, lastSeen: now });
    }
    this.subs.replace(subs, this.self?.nodeId, this.ownAddresses, journal);
  }

  /** After a reconnect, events may have been missed: re-assert our state and reload the registry. */
  private resync(): void {
    if (this.resyncing || this.leaving || !this.nodesMap) return;
    this.resyncing = (async () => {
      try {
        const now = Date.now();
        for (const k of this.known.values()) k.lastSeen = now; // we were deaf, not they dead
        await this.writeLease();
        await this.reannounce();
        await this.loadSnapshot();
        this.log.info({}, 'resynchronised with the Hazelcast cluster');
      } catch (err) {
        this.log.warn({ err: String(err) }, 'resync after reconnect failed; the next refresh retries');
      } finally {
        this.resyncing = undefined;
      }
    })();
  }

  private onLifecycle(state: LifecycleState): void {
    if (this.leaving) return;
    if (state === LifecycleState.DISCONNECTED) {
      this.connected = false;
      this.log.warn({}, 'lost the connection to the Hazelcast cluster; reconnecting');
    } else if (state === LifecycleState.CONNECTED) {
      const wasDown = !this.connected && this.client !== undefined;
      this.connected = true;
      if (wasDown) this.resync();
    }
  }

  private requireSelf(): NodeInfo {
    if (!this.self || !this.subsMap) throw new Error('the cluster manager has not joined');
    return this.self;
  }
}
