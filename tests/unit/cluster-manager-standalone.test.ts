import { expect } from 'chai';
import { StandaloneClusterManager } from '../../backend/src/cluster/standalone.js';
import type { ClusterManager } from '../../backend/src/cluster/types.js';
import { describeClusterManagerContract } from '../contract/cluster-manager.contract.js';

describeClusterManagerContract(
  'standalone',
  async () => {
    let made: ClusterManager | undefined;
    return {
      manager: () => {
        expect(made, 'a standalone cluster has one member').to.equal(undefined);
        return (made = new StandaloneClusterManager());
      },
      cleanup: async () => {
        await made?.leave();
      },
    };
  },
  { multiMember: false, propagationMs: 0, quietMs: 20 },
);
