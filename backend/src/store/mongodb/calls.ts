/**
 * Every database call of the store goes through op(): bounded in time, its failure mapped to a
 * StoreError, and its outcome recorded for isHealthy() together with the topology's writability.
 */
import type { TopologyDescription } from 'mongodb';
import { MongoServerError } from 'mongodb';
import { StoreError } from '../types.js';
import { hasWritableServer } from './client.js';
import { errText } from './errors.js';
import type { ResolvedOptions, StoreLogger } from './options.js';

export type StoreState = 'new' | 'opening' | 'open' | 'closing' | 'closed';

export class DatabaseCalls {
  private topologyWritable = false;
  /** Set by a call that failed for want of the database; cleared by one that got an answer. */
  lastOpFailed = false;

  constructor(
    private readonly opts: Pick<ResolvedOptions, 'writeTimeoutMs' | 'serverSelectionTimeoutMs'>,
    private readonly log: StoreLogger,
    private readonly where: string,
    private readonly state: () => StoreState,
  ) {}

  /** A writable server in sight and no call failed since: the store's half of isHealthy(). */
  reachable(): boolean {
    return this.topologyWritable && !this.lastOpFailed;
  }

  onTopology(desc: TopologyDescription): void {
    const writable = hasWritableServer(desc);
    if (writable === this.topologyWritable) return;
    this.topologyWritable = writable;
    if (writable) this.lastOpFailed = false;
    if (this.state() !== 'open') return;
    if (writable) this.log.info({ store: this.where }, 'message store: database reachable again');
    else this.log.warn({ store: this.where }, 'message store: no writable database server');
  }

  /**
   * The database's own bound on a read (`maxTimeMS`): past it the server stops the query. The
   * caller gives up at op()'s bound anyway; without this a slow query (a scan, on FerretDB 1.24)
   * would go on loading the database for nobody.
   */
  get readLimitMs(): number {
    return this.opts.writeTimeoutMs;
  }

  /** Runs a database call, mapping failures to StoreError and recording health. */
  async op<T>(what: string, call: () => Promise<T>): Promise<T> {
    // Bounded here too: an operation caught in the driver while the database restarted was seen
    // never to settle, and a room's append queue (or a shared lookup) waited on it forever. Past
    // the driver's own bounds its outcome is unknown, as for any failed write: callers retry.
    const limitMs = this.opts.writeTimeoutMs + this.opts.serverSelectionTimeoutMs + 5000;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.lastOpFailed = true;
        this.log.warn(
          { store: this.where, call: what, limitMs },
          'message store: a database call got no answer in time',
        );
        reject(
          new StoreError('UNAVAILABLE', `mongodb store (${this.where}): no answer within ${limitMs} ms`),
        );
      }, limitMs);
    });
    try {
      const result = await Promise.race([call(), expired]);
      this.lastOpFailed = false;
      return result;
    } catch (err) {
      throw this.failure(err);
    } finally {
      clearTimeout(timer);
    }
  }

  failure(err: unknown): StoreError {
    if (err instanceof StoreError) return err;
    if (this.state() === 'closed') {
      return new StoreError('CLOSED', `mongodb store (${this.where}) is closed`, { cause: err });
    }
    // A server error with a reply (bad query, validation) says nothing about reachability.
    if (!(err instanceof MongoServerError)) this.lastOpFailed = true;
    return new StoreError('UNAVAILABLE', `mongodb store (${this.where}) unavailable: ${errText(err)}`, {
      cause: err,
    });
  }
}
