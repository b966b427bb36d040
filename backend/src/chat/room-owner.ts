/**
 * Room affinity for writes. Seqs are allocated optimistically in the shared database, so two
 * nodes appending to one room at once collide on seqs and retry; with every node taking a share of
 * every room's sends (the bus round-robins `chat.send`) that contention grew with the cluster
 * (3 nodes were ~250× slower per ack than 1 under the same load). So each room has an owner node
 * chosen by rendezvous hashing over the live nodes, and the other nodes forward its appends there:
 * one writer per room, group commit without conflicts. Ownership is an optimisation, not a lock:
 * when nodes join or leave, two nodes may write a room for a moment and the unique indexes still
 * arbitrate, so correctness never depends on every node agreeing on the owner. The owner also
 * serves the room's reads (see readAddress).
 */

/** The bus address where node `nodeId` takes appends for the rooms it owns. */
export function appendAddress(nodeId: string): string {
  return `chat.append.${nodeId}`;
}

/**
 * The bus address where node `nodeId` answers reads (joins' catch-up, history) for the rooms it
 * owns: the owner wrote the room's recent messages and holds them in memory, and concurrent reads
 * of one room meet in one place, so a reconnect wave costs the database one read per message
 * rather than one per node and client.
 */
export function readAddress(nodeId: string): string {
  return `chat.read.${nodeId}`;
}

/** FNV-1a, 32 bits: fast, stable across processes, good enough to spread rooms over nodes. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Highest-random-weight owner of `room` among `nodeIds`; a node's leaving moves only its rooms. */
export function ownerOf(room: string, nodeIds: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const id of nodeIds) {
    // Mix twice: plain FNV of near-identical strings clusters in the high bits.
    const score = fnv1a(`${fnv1a(`${room}\u0000${id}`)}\u0000${id}`);
    if (score > bestScore || (score === bestScore && best !== undefined && id < best)) {
      best = id;
      bestScore = score;
    }
  }
  return best;
}
