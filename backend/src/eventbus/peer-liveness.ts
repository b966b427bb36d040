import type { ClusterManager } from '../cluster/types.js';
import type { BusLogger } from './bus-options.js';
import type { NodeTransport } from './transport.js';

/** When a lost peer's port that answered is probed again (ms after the previous probe). */
const PEER_PROBE_AGAIN_MS = [250, 1_000];

/**
 * What this node knows of its peers' reachability: those that refused a connection are skipped
 * by routing for a back-off, and a peer whose link broke is probed to tell a dead process from a
 * slow one.
 */
export class PeerLiveness {
  private readonly unreachableUntil = new Map<string, number>();
  private closed = false;

  constructor(
    private readonly cluster: ClusterManager,
    private readonly transport: NodeTransport | undefined,
    private readonly backoffMs: number,
    private readonly log: BusLogger,
  ) {}

  isUnreachable(nodeId: string): boolean {
    const until = this.unreachableUntil.get(nodeId);
    if (until === undefined) return false;
    if (Date.now() >= until) {
      this.unreachableUntil.delete(nodeId);
      return false;
    }
    return true;
  }

  /** The node refused a connection: routing skips it for the back-off. */
  markUnreachable(nodeId: string): void {
    this.unreachableUntil.set(nodeId, Date.now() + this.backoffMs);
  }

  /** The node left the cluster. */
  forget(nodeId: string): void {
    this.unreachableUntil.delete(nodeId);
  }

  close(): void {
    this.closed = true;
  }

  /**
   * A broken link may mean a killed process. If the peer's bus port now refuses connections, the
   * cluster drops it at once instead of when its lease lapses (seconds during which its rooms have
   * no owner); a peer that is only slow or cut off answers, or times out, and goes by its lease.
   * A port that answers is asked again a little later: a dying process may close its links before
   * its listening socket, and the kernel completes handshakes on that socket until it is closed.
   */
  checkPeerGone(nodeId: string): void {
    const peer = this.cluster.node(nodeId);
    if (this.closed || !peer || !this.transport?.probe) return;
    const probe = this.transport.probe.bind(this.transport);
    void (async () => {
      let verdict: 'refused' | 'answered' | 'unknown' = 'unknown';
      for (const waitMs of [0, ...PEER_PROBE_AGAIN_MS]) {
        if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs).unref());
        const now = this.cluster.node(nodeId);
        // Dropped meanwhile, or back at another address: nothing left to decide.
        if (this.closed || !now || now.host !== peer.host || now.port !== peer.port) return;
        verdict = await probe(peer);
        if (verdict !== 'answered') break;
      }
      if (this.closed) return;
      if (verdict === 'refused') {
        this.cluster.reportUnreachable(
          nodeId,
          `its link closed and ${peer.host}:${peer.port} refuses connections`,
        );
      } else {
        this.log.info(
          { nodeId, probe: verdict },
          'link to a node closed but its bus port did not refuse: it stays until its lease lapses',
        );
      }
    })().catch((err: unknown) => this.log.warn({ nodeId, err: String(err) }, 'could not probe a lost peer'));
  }
}
