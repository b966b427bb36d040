import type { ClusterEvent, ClusterListener } from './types.js';

/**
 * The listeners of a cluster manager's events: `on` returns the function that removes one, and
 * a listener that throws does not keep the others from the event (its error goes to `onError`).
 */
export class ClusterListeners {
  private readonly listeners = new Map<ClusterEvent, Set<ClusterListener>>();

  constructor(private readonly onError: (err: unknown, event: ClusterEvent) => void) {}

  on(event: ClusterEvent, listener: ClusterListener): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => this.off(event, listener);
  }

  off(event: ClusterEvent, listener: ClusterListener): void {
    this.listeners.get(event)?.delete(listener);
  }

  emit(event: ClusterEvent, nodeId: string): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(nodeId);
      } catch (err) {
        this.onError(err, event);
      }
    }
  }

  clear(): void {
    this.listeners.clear();
  }
}
