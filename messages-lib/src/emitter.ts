/** Event name → payload type. */
export type EventMap = object;

export type Listener<T> = (payload: T) => void;

/**
 * A tiny typed event emitter that works the same in browsers and Node. `on` returns the function
 * that removes the listener. A listener that throws does not break the emitter (the library keeps
 * delivering to the others and its own state stays consistent); the exception is rethrown
 * asynchronously so it still shows up as an uncaught error.
 */
export class TypedEmitter<E extends EventMap> {
  private readonly listeners = new Map<keyof E, Set<Listener<never>>>();

  on<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  once<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
    const off = this.on(event, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }

  off<K extends keyof E>(event: K, listener: Listener<E[K]>): void {
    this.listeners.get(event)?.delete(listener as Listener<never>);
  }

  /** How many listeners the event has (e.g. to know whether an `error` would go unseen). */
  listenerCount<K extends keyof E>(event: K): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  protected emit<K extends keyof E>(event: K, payload: E[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<E[K]>)(payload);
      } catch (err) {
        rethrowLater(err);
      }
    }
  }

  protected removeAllListeners(): void {
    this.listeners.clear();
  }
}

function rethrowLater(err: unknown): void {
  const report = (globalThis as { reportError?: (e: unknown) => void }).reportError;
  if (typeof report === 'function') report(err);
  else
    setTimeout(() => {
      throw err;
    }, 0);
}
