import type { LiveNodes, SharedMultiMap } from './chat-cluster.js';

export interface PresenceEntry {
  /** user */
  u: string;
  /** session (one user may be connected several times) */
  s: string;
  /** node holding the connection: when it dies, the entry goes */
  n: string;
  /** hash of the resume token that proves a reconnecting client is the one holding the name */
  k?: string;
}
type Entry = PresenceEntry;

/**
 * Who is in each room, cluster-wide, in a shared multimap room → {user, session, node}, and the
 * same entries under room + user, so that a join's name check and a leave read the user's own
 * entries rather than the whole room (with a room's n users all rejoining after a node died, that
 * was n reads of n entries). Entries of a node that left are ignored at once (the node is no
 * longer in the cluster view) and removed from both maps by one surviving node.
 */
export class Presence {
  constructor(
    private readonly map: SharedMultiMap,
    private readonly byUser: SharedMultiMap,
    private readonly cluster: LiveNodes,
  ) {}

  async join(room: string, user: string, session: string, node: string, tokenHash?: string): Promise<void> {
    const entry: Entry = { u: user, s: session, n: node, ...(tokenHash ? { k: tokenHash } : {}) };
    const raw = JSON.stringify(entry);
    await Promise.all([this.map.put(room, raw), this.byUser.put(userKey(room, user), raw)]);
  }

  /** Live entries of the user in the room held by other sessions than this one. */
  async heldElsewhere(room: string, user: string, session: string): Promise<{ raw: string; entry: Entry }[]> {
    const out: { raw: string; entry: Entry }[] = [];
    for (const raw of await this.byUser.get(userKey(room, user))) {
      const entry = parse(raw);
      if (entry && entry.u === user && entry.s !== session && this.cluster.node(entry.n))
        out.push({ raw, entry });
    }
    return out;
  }

  async removeRaw(room: string, raw: string): Promise<void> {
    const user = parse(raw)?.u;
    await Promise.all([
      this.map.remove(room, raw),
      user === undefined ? undefined : this.byUser.remove(userKey(room, user), raw),
    ]);
  }

  /** Removes the user's entry for that session, or every entry of the user when no session is given. */
  async leave(room: string, user: string, session?: string): Promise<boolean> {
    let removed = false;
    for (const value of await this.byUser.get(userKey(room, user))) {
      const e = parse(value);
      if (e && e.u === user && (session === undefined || e.s === session)) {
        await this.removeRaw(room, value);
        removed = true;
      }
    }
    return removed;
  }

  async users(room: string): Promise<string[]> {
    const users = new Set<string>();
    for (const value of await this.map.get(room)) {
      const e = parse(value);
      if (e && this.cluster.node(e.n)) users.add(e.u);
    }
    return [...users].sort();
  }

  /** Removes a departed node's entries; returns the rooms whose presence changed. */
  async collect(nodeId: string): Promise<string[]> {
    const rooms = new Set<string>();
    for (const [room, value] of await this.map.entries()) {
      if (parse(value)?.n === nodeId) {
        await this.removeRaw(room, value);
        rooms.add(room);
      }
    }
    return [...rooms];
  }
}

function userKey(room: string, user: string): string {
  return `${room}\u0000${user}`;
}

function parse(value: string): Entry | undefined {
  try {
    const e = JSON.parse(value) as Entry;
    return typeof e.u === 'string' && typeof e.s === 'string' && typeof e.n === 'string' ? e : undefined;
  } catch {
    return undefined;
  }
}
