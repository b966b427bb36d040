export { HazelcastClusterManager, type HazelcastClusterOptions } from './hazelcast.js';
export { StandaloneClusterManager } from './standalone.js';
export type { ClusterEvent, ClusterManager, NodeInfo } from './types.js';
