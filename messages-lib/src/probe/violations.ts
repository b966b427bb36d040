/** What the probe reports as wrong: the kinds, one violation, and the log that counts and samples them. */

export type ViolationKind =
  | 'lost' // an acked message a client never received
  | 'duplicate' // a seq or clientMsgId delivered twice to one client
  | 'seq-mismatch' // delivered under another seq than its ack said
  | 'content-mismatch' // delivered under the acked clientMsgId but with another text
  | 'out-of-order' // a delivered seq ≤ the one delivered before it
  | 'not-stored' // acked, but the room's history does not hold it
  | 'stored-twice' // one clientMsgId (or one seq) stored more than once
  | 'stored-under-other-seq'; // stored once, but not under the seq of its ack

export interface Violation {
  kind: ViolationKind;
  room: string;
  /** The client that saw it (client-side checks). */
  user?: string;
  clientMsgId?: string;
  seq?: number;
  detail: string;
}

const PER_KIND = 5;
const MAX_VIOLATIONS = 20;

/** Counts every violation, keeps the first few of each kind. */
export class ViolationLog {
  count = 0;
  readonly sample: Violation[] = [];
  private readonly perKind = new Map<ViolationKind, number>();

  constructor(private readonly onViolation?: (v: Violation) => void) {}

  add(v: Violation): void {
    this.count++;
    this.onViolation?.(v);
    const n = this.perKind.get(v.kind) ?? 0;
    if (n >= PER_KIND || this.sample.length >= MAX_VIOLATIONS) return;
    this.perKind.set(v.kind, n + 1);
    this.sample.push(v);
  }

  clone(): ViolationLog {
    const copy = new ViolationLog();
    copy.count = this.count;
    copy.sample.push(...this.sample);
    for (const [k, n] of this.perKind) copy.perKind.set(k, n);
    return copy;
  }
}

/** Logs one clientMsgId stored under several seqs; returns the extra copies (duplicates). */
export function storedTwice(room: string, clientMsgId: string, seqs: number[], log: ViolationLog): number {
  log.add({
    kind: 'stored-twice',
    room,
    clientMsgId,
    seq: seqs[0]!,
    detail: `one clientMsgId stored under seqs ${seqs.join(', ')}`,
  });
  return seqs.length - 1;
}
