/**
 * Test-only fault points: a test starts a node with `SWITCHBOARD_FAULT_<NAME>=<clientMsgId>` and
 * the node kills itself (SIGKILL, no cleanup, as a crash would) when it reaches that point for the
 * message with that clientMsgId. Ignored when NODE_ENV=production, and unset anywhere else.
 *
 * - `SWITCHBOARD_FAULT_KILL_AFTER_STORE`: the room's owner has stored the message and not yet
 *   published it (tests/integration/chat-continuity.test.ts).
 *
 * And one that loses a publish on its way to the other nodes, as a broken link between nodes
 * would: with `SWITCHBOARD_FAULT_PUBLISH_HERE_ONLY=<clientMsgId>` the writer publishes that message
 * to its own consumers only (tests/integration/chat-continuity.test.ts, the position check).
 *
 * And one that loses messages after acking them, so tests can check that switchboard-probe (and
 * its canary) notice: with `SWITCHBOARD_TEST_ACK_AND_DROP=<regex>`, a send whose text matches is
 * neither stored nor published, yet acked under a seq no message will ever have
 * (tests/integration/probe-canary.test.ts).
 */
export type FaultPoint = 'KILL_AFTER_STORE';

export function crashAt(point: FaultPoint, clientMsgId: string): void {
  if (process.env.NODE_ENV === 'production') return;
  const target = process.env[`SWITCHBOARD_FAULT_${point}`];
  if (target === undefined || target !== clientMsgId) return;
  process.kill(process.pid, 'SIGKILL');
}

/** Whether the writer should publish this message to its own node only (a lost publish). */
export function publishesHereOnly(clientMsgId: string): boolean {
  // Read once: this runs on every publish.
  hereOnly ??=
    process.env.NODE_ENV === 'production' ? null : (process.env.SWITCHBOARD_FAULT_PUBLISH_HERE_ONLY ?? null);
  return hereOnly === clientMsgId;
}
let hereOnly: string | null | undefined;

const PHANTOM_SEQ_OFFSET = 1_000_000_000;
let dropPattern: RegExp | null | undefined;

/** The seq to ack a message under without storing or publishing it, or undefined (the usual case). */
export function ackAndDropSeq(
  text: string | undefined,
  lastSeq: () => Promise<number>,
): Promise<number> | undefined {
  if (dropPattern === undefined) {
    const pattern = process.env.SWITCHBOARD_TEST_ACK_AND_DROP;
    dropPattern = pattern && process.env.NODE_ENV !== 'production' ? new RegExp(pattern) : null;
    if (dropPattern)
      process.emitWarning(
        `SWITCHBOARD_TEST_ACK_AND_DROP: sends matching ${dropPattern} are acked and dropped (test only)`,
      );
  }
  if (dropPattern === null || text === undefined || !dropPattern.test(text)) return undefined;
  return lastSeq().then((seq) => seq + PHANTOM_SEQ_OFFSET);
}
