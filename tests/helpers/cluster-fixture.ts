import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FerretDb, startFerretDb } from '../infra/ferretdb.js';
import { type HazelcastCluster, startHazelcastCluster } from '../infra/hazelcast.js';
import { waitFor } from '../infra/proc.js';
import { BusNode } from './bus-nodes.js';

/**
 * The real stack for integration tests: Hazelcast members, FerretDB, a shared files directory
 * and backend node processes that join them. Everything on 127.0.0.1; `stop()` ends it all.
 */
export class ClusterFixture {
  nodes: BusNode[] = [];
  private constructor(
    readonly hz: HazelcastCluster,
    readonly db: FerretDb,
    readonly filesDir: string,
    readonly dbName: string,
    private readonly extraEnv: Record<string, string>,
  ) {}

  static async start(opts: {
    nodes: number;
    members?: number;
    env?: Record<string, string>;
  }): Promise<ClusterFixture> {
    const [hz, db, filesDir] = await Promise.all([
      startHazelcastCluster({ members: opts.members ?? 2 }),
      startFerretDb(),
      mkdtemp(join(tmpdir(), 'sb-files-')),
    ]);
    const fixture = new ClusterFixture(hz, db, filesDir, `sb_${Date.now().toString(36)}`, opts.env ?? {});
    const names = Array.from({ length: opts.nodes }, (_, i) => `node-${i}`);
    fixture.nodes = await Promise.all(names.map((name) => fixture.startNode(name)));
    await fixture.waitForNodes(fixture.nodes);
    return fixture;
  }

  env(): Record<string, string> {
    return {
      CLUSTER_MODE: 'hazelcast',
      HAZELCAST_MEMBERS: this.hz.members.map((m) => m.address).join(','),
      HAZELCAST_CLUSTER_NAME: this.hz.clusterName,
      CLUSTER_LEASE_MS: '3000',
      STORE: 'mongodb',
      MONGO_URL: this.db.url,
      MONGO_DB: this.dbName,
      FILES_DIR: this.filesDir,
      ...this.extraEnv,
    };
  }

  startNode(name: string, env: Record<string, string> = {}): Promise<BusNode> {
    return BusNode.start(name, { ...this.env(), ...env });
  }

  /** Waits until every given node sees exactly the given nodes in its registry. */
  async waitForNodes(nodes: BusNode[]): Promise<void> {
    const want = nodes
      .map((n) => n.nodeId)
      .sort()
      .join(',');
    for (const n of nodes) {
      await waitFor(
        `${n.name} to see ${nodes.length} nodes`,
        async () =>
          (await n.view()).nodes
            .map((x) => x.nodeId)
            .sort()
            .join(',') === want,
        20_000,
      );
    }
  }

  /** Waits until every node routes `address` to all of the given nodes. */
  async waitForSubscribers(address: string, holders: BusNode[], on: BusNode[] = this.nodes): Promise<void> {
    const want = holders
      .map((n) => n.nodeId)
      .sort()
      .join(',');
    for (const n of on) {
      let seen = '';
      await waitFor(
        `${n.name} to route ${address}`,
        async () => {
          seen = ((await n.view(address)).subscribers[address] ?? []).sort().join(',');
          return seen === want;
        },
        15_000,
      ).catch((err: unknown) => {
        throw new Error(`${String(err)} (routes to ${seen || 'nobody'}, wanted ${want})`);
      });
    }
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.proc.stop()));
    await Promise.allSettled([this.hz.stop(), this.db.stop()]);
    await rm(this.filesDir, { recursive: true, force: true });
  }
}
