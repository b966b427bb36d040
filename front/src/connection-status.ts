import type { ConnectionState, RoomState } from '@switchboard/messages-lib';

/** What the status line shows; `data-state` on the element carries the same, for styling and tests. */
export type StatusKind = 'idle' | 'connecting' | 'connected' | 'catching-up' | 'reconnecting' | 'closed';

/**
 * The always-visible connection line. It combines the client's connection state with the room's
 * rejoin: "connected" only once the room has replayed what was missed.
 */
export class ConnectionStatus {
  private connection: ConnectionState | 'idle' = 'idle';
  private room: RoomState | undefined;
  private missed: number | undefined;
  private caughtUp: number | undefined;
  private attempt = 0;

  constructor(private readonly el: HTMLElement) {
    this.render();
  }

  setConnection(state: ConnectionState): void {
    this.connection = state;
    if (state !== 'open') {
      this.missed = undefined;
      this.caughtUp = undefined;
    } else this.attempt = 0;
    this.render();
  }

  setReconnectAttempt(attempt: number): void {
    this.attempt = attempt + 1;
    this.render();
  }

  setRoom(state: RoomState): void {
    this.room = state;
    this.render();
  }

  catchingUp(missed: number): void {
    this.missed = missed;
    this.render();
  }

  /** The room holds everything the server had: a catch-up in progress is over. */
  synced(): void {
    if (this.missed !== undefined) this.caughtUp = this.missed;
    this.missed = undefined;
    this.render();
  }

  kind(): StatusKind {
    switch (this.connection) {
      case 'idle':
        return 'idle';
      case 'connecting':
        return 'connecting';
      case 'reconnecting':
        return 'reconnecting';
      case 'closed':
        return 'closed';
      case 'open':
        if (this.missed !== undefined || this.room === 'rejoining' || this.room === 'joining') {
          return 'catching-up';
        }
        return 'connected';
    }
  }

  private label(kind: StatusKind): string {
    switch (kind) {
      case 'idle':
        return 'Not connected';
      case 'connecting':
        return 'Connecting…';
      case 'reconnecting':
        return this.attempt > 1 ? `Reconnecting… (attempt ${this.attempt})` : 'Reconnecting…';
      case 'closed':
        return 'Disconnected';
      case 'catching-up':
        return this.missed !== undefined
          ? `Catching up ${this.missed} missed ${plural(this.missed)}…`
          : 'Catching up…';
      case 'connected':
        return this.caughtUp
          ? `Connected · caught up ${this.caughtUp} missed ${plural(this.caughtUp)}`
          : 'Connected';
    }
  }

  private render(): void {
    const kind = this.kind();
    this.el.dataset.state = kind;
    document.body.dataset.conn = kind;
    this.el.textContent = this.label(kind);
  }
}

function plural(n: number): string {
  return n === 1 ? 'message' : 'messages';
}
