import type { ChatError } from './errors.js';

/** The callers of `connect()` waiting for the connection to open: settled together, once. */
export class ConnectWaiters {
  private waiters: { resolve: () => void; reject: (err: ChatError) => void }[] = [];

  /** A promise settled by the next `resolveAll` or `rejectAll`. */
  wait(): Promise<void> {
    return new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  resolveAll(): void {
    for (const w of this.take()) w.resolve();
  }

  rejectAll(err: ChatError): void {
    for (const w of this.take()) w.reject(err);
  }

  private take() {
    const waiters = this.waiters;
    this.waiters = [];
    return waiters;
  }
}
