import type { LiveNodes, SharedMap } from './chat-cluster.js';

/** Who holds a name in a room (open mode): session, node, hash of its resume token. */
export interface NameClaim {
  s: string;
  n: string;
  k: string;
}

/** Rounds of a claim whose holder keeps changing under it before the join is refused as taken. */
const MAX_CLAIM_ROUNDS = 5;

/**
 * Open mode's one-holder-per-name rule, decided by one atomic put-if-absent on a cluster-wide map
 * (room + user → claim): of any number of concurrent joins with one name on any nodes, exactly one
 * wins. A held claim is taken over, by an atomic compare-and-set, only by the same session, by a
 * client with the holder's resume token, or when the holder's node is no longer in the cluster.
 */
export class NameClaims {
  constructor(
    private readonly map: SharedMap,
    private readonly cluster: LiveNodes,
  ) {}

  /** True when the session now holds the name; false when another live connection does. */
  async claim(room: string, user: string, claim: NameClaim): Promise<boolean> {
    const key = claimKey(room, user);
    const mine = JSON.stringify(claim);
    for (let round = 0; round < MAX_CLAIM_ROUNDS; round++) {
      const held = await this.map.putIfAbsent(key, mine);
      if (held === undefined || held === mine) return true;
      const h = parse(held);
      const free = !h || h.s === claim.s || h.k === claim.k || !this.cluster.node(h.n);
      if (!free) return false;
      if (await this.map.replaceIfSame(key, held, mine)) return true;
    }
    return false;
  }

  /** Gives the name up if this session (or, with no session given, anyone) holds it. */
  async release(room: string, user: string, session?: string): Promise<void> {
    const key = claimKey(room, user);
    const held = await this.map.get(key);
    if (held === undefined) return;
    if (session === undefined || parse(held)?.s === session) await this.map.removeIfSame(key, held);
  }

  /** Removes the claims held by connections of a departed node. */
  async collect(nodeId: string): Promise<void> {
    for (const [key, held] of await this.map.entries()) {
      if (parse(held)?.n === nodeId) await this.map.removeIfSame(key, held);
    }
  }
}

function claimKey(room: string, user: string): string {
  return `${room}\u0000${user}`;
}

function parse(value: string): NameClaim | undefined {
  try {
    const c = JSON.parse(value) as NameClaim;
    return typeof c.s === 'string' && typeof c.n === 'string' && typeof c.k === 'string' ? c : undefined;
  } catch {
    return undefined;
  }
}
