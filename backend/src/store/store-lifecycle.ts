import { StoreError } from './types.js';

export type StoreState = 'new' | 'opening' | 'open' | 'closing' | 'closed';

/**
 * A store's one trip from new to closed, shared by the stores: opened once; closed once, after an
 * open under way has settled; on close, what was accepted is flushed (state `closing`, writes
 * still go out), then the store is `closed` before its connection is let go.
 */
export class StoreLifecycle {
  state: StoreState = 'new';
  private opening: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  /** `what` names the store in the refusal of a second open. */
  constructor(private readonly what: string) {}

  /** Runs `connect`; the state is `open` once it resolves, `closed` if it throws. */
  open(connect: () => Promise<void>): Promise<void> {
    if (this.state !== 'new') {
      return Promise.reject(new StoreError('CLOSED', `${this.what} was already opened`));
    }
    this.state = 'opening';
    this.opening = connect().then(
      () => {
        this.state = 'open';
      },
      (err: unknown) => {
        this.state = 'closed';
        throw err;
      },
    );
    return this.opening;
  }

  close(flush: () => Promise<void>, release: () => Promise<void>): Promise<void> {
    this.closing ??= this.shutDown(flush, release);
    return this.closing;
  }

  private async shutDown(flush: () => Promise<void>, release: () => Promise<void>): Promise<void> {
    await this.opening?.catch(() => undefined); // its failure went to open()'s caller
    if (this.state !== 'open') {
      this.state = 'closed';
      return;
    }
    this.state = 'closing';
    await flush();
    this.state = 'closed';
    await release();
  }
}
