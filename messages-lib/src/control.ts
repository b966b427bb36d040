/** A message on Switchboard's control address (docs/protocol.md), its fields checked. */
export type Control =
  /** The connection's session id and the node serving it. */
  | { kind: 'hello'; session: string | undefined; node: string | undefined }
  /** The node's store is back: a send refused while it was not waits no longer than `jitterMs`. */
  | { kind: 'retry'; jitterMs: number }
  /**
   * The node drains: reconnect after `afterMs` plus jitter, at most `jitterMs` when the server
   * says how much (undefined: the client's own drain jitter).
   */
  | { kind: 'reconnect'; afterMs: number; jitterMs: number | undefined };

/** Delays a control message may ask for are bounded: a broken server cannot park its clients. */
const MAX_DELAY_MS = 60_000;

/** The control message a body holds, or undefined (unknown kinds included). */
export function controlOf(body: unknown): Control | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const control = body as {
    kind?: unknown;
    session?: unknown;
    node?: unknown;
    afterMs?: unknown;
    jitterMs?: unknown;
  };
  switch (control.kind) {
    case 'hello':
      return {
        kind: 'hello',
        session: typeof control.session === 'string' ? control.session : undefined,
        node: typeof control.node === 'string' ? control.node : undefined,
      };
    case 'retry':
      return { kind: 'retry', jitterMs: bounded(control.jitterMs) ?? 1_000 };
    case 'reconnect':
      return {
        kind: 'reconnect',
        afterMs: bounded(control.afterMs) ?? 0,
        jitterMs: bounded(control.jitterMs),
      };
    default:
      return undefined;
  }
}

function bounded(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? Math.min(Math.max(0, v), MAX_DELAY_MS) : undefined;
}
