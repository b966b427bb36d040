import type { AppendInput, AppendResult, ChatMessage, HistoryQuery, MessageStore } from '../store/types.js';

export type StoreOperation = 'append' | 'history' | 'latest' | 'lastSeq';

/** What the metrics see of the store: one call per finished operation. */
export interface StoreObserver {
  operation(op: StoreOperation, seconds: number, ok: boolean): void;
}

/**
 * Times every data call of a store without the store knowing: the same object for the
 * composition root, with the latency of each call reported to the observer.
 */
export function observeStore(store: MessageStore, observer: StoreObserver): MessageStore {
  const timed = async <T>(op: StoreOperation, call: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      const result = await call();
      observer.operation(op, (performance.now() - t0) / 1000, true);
      return result;
    } catch (err) {
      observer.operation(op, (performance.now() - t0) / 1000, false);
      throw err;
    }
  };
  return {
    get kind() {
      return store.kind;
    },
    open: () => store.open(),
    epoch: () => store.epoch(),
    append: (input: AppendInput): Promise<AppendResult> => timed('append', () => store.append(input)),
    history: (room: string, query: HistoryQuery): Promise<ChatMessage[]> =>
      timed('history', () => store.history(room, query)),
    latest: (room: string, limit: number): Promise<ChatMessage[]> =>
      timed('latest', () => store.latest(room, limit)),
    lastSeq: (room: string): Promise<number> => timed('lastSeq', () => store.lastSeq(room)),
    isHealthy: () => store.isHealthy(),
    flush: () => store.flush(),
    close: () => store.close(),
  };
}
