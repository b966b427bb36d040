/** RecentTailStore's settings and what it reports (recent-tail.ts). */

export interface RecentTailOptions {
  /** Newest messages kept per room (0: no tail at all, everything goes to the store). */
  perRoom: number;
  /** Estimated bytes of messages kept over all rooms of this node. */
  perNodeBytes: number;
}

/** Why a tail went out of memory (each one read again on the room's next use). */
export type TailDropReason = 'moved' | 'not_owner' | 'other_writer' | 'evicted' | 'forgotten';

export interface RecentTailStats {
  rooms: number;
  messages: number;
  bytes: number;
  /** Tails read from the store since start (one `latest` each). */
  loads: number;
  /** Tails taken from a draining owner's handover instead of read from the store. */
  handedOver: number;
  /** Tails dropped since start, by reason. */
  drops: Record<TailDropReason, number>;
}
