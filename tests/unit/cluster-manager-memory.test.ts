import type { ClusterManager, NodeInfo } from '../../backend/src/cluster/types.js';
import { describeClusterManagerContract } from '../contract/cluster-manager.contract.js';
import { MemoryRegistry } from '../helpers/memory-cluster.js';

describeClusterManagerContract(
  'memory (the in-process registry of the unit tests)',
  async () => {
    const registry = new MemoryRegistry();
    const made: ClusterManager[] = [];
    const joinedAs = new Map<ClusterManager, NodeInfo>();
    return {
      manager: () => {
        const m = registry.manager();
        const join = m.join.bind(m);
        m.join = async (self) => {
          joinedAs.set(m, self);
          await join(self);
        };
        made.push(m);
        return m;
      },
      crash: async (m) => registry.expire(joinedAs.get(m)!.nodeId),
      cleanup: async () => {
        await Promise.all(made.map((m) => m.leave()));
      },
    };
  },
  { multiMember: true, propagationMs: 200, quietMs: 20, crashDetectionMs: 200 },
);
