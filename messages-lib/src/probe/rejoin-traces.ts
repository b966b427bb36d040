/**
 * What the slowest reconnections went through, step by step: a slow rejoin in a fault run says
 * whether the client waited on its own backoff, was refused, or waited on a join.
 */

/** One reconnection: ms from the connection's loss to the room joined again, and its steps. */
export interface RejoinTrace {
  ms: number;
  client: string;
  /** When the connection was lost (ISO 8601), to set beside the servers' logs. */
  lostAt: string;
  /** `+<ms since the loss> <what>`, in order (at most MAX_STEPS, the last ones dropped). */
  steps: string[];
}

/** How many of the slowest reconnections a report keeps. */
export const SLOWEST_KEPT = 5;
const MAX_STEPS = 16;

export class RejoinTraces {
  private readonly open = new Map<number, { at: number; wall: number; steps: string[] }>();
  private kept: RejoinTrace[] = [];

  /** The client's connection was lost at `at` (ignored when it already is). */
  lost(i: number, at: number, what: string): void {
    if (this.open.has(i)) return;
    this.open.set(i, { at, wall: Date.now(), steps: [`+0 ${what}`] });
  }

  /** A step of a reconnection under way (ignored when the client is connected and joined). */
  step(i: number, at: number, what: string): void {
    const t = this.open.get(i);
    if (t && t.steps.length < MAX_STEPS) t.steps.push(`+${Math.round(at - t.at)} ${what}`);
  }

  /** The room is joined again: keeps the trace if it is among the slowest. */
  joined(i: number, at: number, client: string): void {
    const t = this.open.get(i);
    if (!t) return;
    this.open.delete(i);
    const ms = Math.round(at - t.at);
    this.kept = slowest([
      ...this.kept,
      { ms, client, lostAt: new Date(t.wall).toISOString(), steps: [...t.steps, `+${ms} joined`] },
    ]);
  }

  slowest(): RejoinTrace[] {
    return this.kept;
  }
}

/** The SLOWEST_KEPT slowest of several lists (workers' reports merged). */
export function slowest(traces: RejoinTrace[]): RejoinTrace[] {
  return [...traces].sort((a, b) => b.ms - a.ms).slice(0, SLOWEST_KEPT);
}
