/**
 * The (room, clientMsgId) keys of the messages this node has published, newest last, at most
 * `max` of them (the oldest forgotten first). A retried send the store answers "already stored"
 * is published again unless its key is here: the node that stored it may have died before
 * publishing, and clients drop a seq they hold, so a forgotten key costs a second copy on the
 * wire, never a second message on screen.
 */
export class PublishedKeys {
  private readonly keys = new Set<string>();

  constructor(private readonly max: number) {}

  has(key: string): boolean {
    return this.keys.has(key);
  }

  add(key: string): void {
    this.keys.delete(key);
    this.keys.add(key);
    if (this.keys.size > this.max) {
      const oldest = this.keys.values().next().value;
      if (oldest !== undefined) this.keys.delete(oldest);
    }
  }
}
