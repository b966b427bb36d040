/**
 * What the chat service needs of the cluster, and nothing more: the ClusterManager SPI also
 * joins, leaves, registers subscriptions and reports unreachable nodes, which are the bus's and
 * main.ts's business. A ClusterManager satisfies these interfaces as it is, so main.ts passes the
 * same object; a test needs only a fake of what is declared here.
 */
import type { SharedMap, SharedMultiMap } from '../cluster/types.js';

export type { SharedMap, SharedMultiMap };

/** A node as the chat service sees it: only its id matters. */
export interface MemberNode {
  readonly nodeId: string;
}

/**
 * Whether a node is in the cluster now. Presence entries and name claims record the node holding
 * the connection, and count for nothing once that node is gone, before anyone removes them.
 */
export interface LiveNodes {
  node(nodeId: string): MemberNode | undefined;
}

/** The live nodes and their consumers: what room ownership and departures are computed from. */
export interface Membership extends LiveNodes {
  /** Live nodes, this one included; a snapshot. */
  nodes(): readonly MemberNode[];
  /** Live nodes with a consumer for the address: a node takes appends while it consumes its own address. */
  subscribers(address: string): readonly string[];
  /** A node left or was dropped: its presence and name claims are collected. */
  on(event: 'nodeLeft', listener: (nodeId: string) => void): () => void;
}

/** The cluster-wide maps presence (multimaps) and name claims (atomic put-if-absent) live in. */
export interface SharedData {
  multiMap(name: string): SharedMultiMap;
  map(name: string): SharedMap;
}

/** What ChatService takes as `cluster`. */
export type ChatCluster = Membership & SharedData;
