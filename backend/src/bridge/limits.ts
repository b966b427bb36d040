/**
 * Limits shared by every bridge of a node (WebSocket, SockJS, gRPC), keyed by the client's IP
 * address: connections open, and requests waiting for a reply. A request's slot is given back
 * when its reply (or timeout) arrives, not when its socket closes: a client that reconnects in a
 * loop cannot start more store reads than its address's share while the old ones still run.
 */
export interface AddressLimitsConfig {
  maxConnectionsPerAddress: number;
  maxInflightPerAddress: number;
}

/** One key per client whatever the socket family: `::ffff:1.2.3.4` is 1.2.3.4. */
function keyOf(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

export class AddressLimits {
  private readonly connections = new Map<string, number>();
  private readonly inflight = new Map<string, number>();

  constructor(readonly config: AddressLimitsConfig) {}

  /** Takes a connection slot; false when the address holds its maximum already. */
  openConnection(address: string | undefined): boolean {
    const key = keyOf(address);
    const n = this.connections.get(key) ?? 0;
    if (n >= this.config.maxConnectionsPerAddress) return false;
    this.connections.set(key, n + 1);
    return true;
  }

  closeConnection(address: string | undefined): void {
    decrement(this.connections, keyOf(address));
  }

  /** Takes a request slot; false when the address has its maximum waiting for replies. */
  startRequest(address: string | undefined): boolean {
    const key = keyOf(address);
    const n = this.inflight.get(key) ?? 0;
    if (n >= this.config.maxInflightPerAddress) return false;
    this.inflight.set(key, n + 1);
    return true;
  }

  endRequest(address: string | undefined): void {
    decrement(this.inflight, keyOf(address));
  }

  /** For tests and metrics. */
  counts(address: string | undefined): { connections: number; inflight: number } {
    const key = keyOf(address);
    return { connections: this.connections.get(key) ?? 0, inflight: this.inflight.get(key) ?? 0 };
  }
}

function decrement(map: Map<string, number>, key: string): void {
  const n = (map.get(key) ?? 0) - 1;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}

/** A token bucket: `ratePerSec` on average, bursts of `burst`. */
export class TokenBucket {
  private tokens: number;
  private last = Date.now();

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.ratePerSec);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** The IP of a gRPC peer string (`1.2.3.4:5678`, `[::1]:5678`, `ipv4:…`). */
export function ipOfPeer(peer: string): string {
  const p = peer.replace(/^ipv[46]:/, '');
  const bracket = /^\[([^\]]+)\]:\d+$/.exec(p);
  if (bracket) return bracket[1]!;
  const colon = p.lastIndexOf(':');
  return colon > 0 && p.indexOf(':') === colon ? p.slice(0, colon) : p;
}
