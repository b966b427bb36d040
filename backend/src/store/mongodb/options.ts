/** MongoMessageStore's options, their defaults, and its logger. */
import type { Document, WriteConcernSettings } from 'mongodb';

export interface StoreLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug?(obj: object, msg: string): void;
}

export interface MongoMessageStoreOptions {
  /** mongodb:// or mongodb+srv:// connection string. */
  url: string;
  dbName: string;
  /** Prepended to the collection name, so several deployments can share a database. */
  collectionPrefix?: string;
  /** Group commit (default true). Off: one insertOne per message, for comparison. */
  batching?: boolean;
  /** Most messages in one insertMany (default 256). */
  maxBatch?: number;
  /** Bound on one write: the write concern's wtimeout; sockets time out a little later. Default 10000. */
  writeTimeoutMs?: number;
  /** How long an operation waits for a usable server before failing UNAVAILABLE. Default 5000. */
  serverSelectionTimeoutMs?: number;
  /** How often the driver checks the server; bounds how fast isHealthy() recovers. Default 2000. */
  heartbeatFrequencyMs?: number;
  /** Seq conflicts with other nodes tolerated for one batch before failing UNAVAILABLE. Default 100. */
  maxConflicts?: number;
  /** Inserts out at once on this node, each carrying the ready batches of several rooms. Default 2. */
  maxInsertsInFlight?: number;
  /** Most documents in one such insert (a room's batch is never split). Default 1000. */
  maxInsertDocs?: number;
  /**
   * Look up every batch's clientMsgIds before inserting it (default false). Off, the lookup runs
   * only after a duplicate-key error, which is where a retry shows up anyway: a batch without
   * retries then costs one round trip instead of two.
   */
  precheck?: boolean;
  /** Sees every command sent to the database (tests that count commands; off by default). */
  commandObserver?: (commandName: string, command: Document) => void;
  /** Log commands that take longer than this many ms (0, the default: off; it costs an event per command). */
  slowCommandMs?: number;
  /** Default `{ w: 'majority', journal: true }` (FerretDB accepts it). */
  writeConcern?: WriteConcernSettings;
  logger?: StoreLogger;
}

/** The options with every default filled in (the logger and the command observer aside). */
export type ResolvedOptions = Required<Omit<MongoMessageStoreOptions, 'logger' | 'commandObserver'>>;

export function resolveOptions(options: MongoMessageStoreOptions): ResolvedOptions {
  return {
    url: options.url,
    dbName: options.dbName,
    collectionPrefix: options.collectionPrefix ?? '',
    batching: options.batching ?? true,
    maxBatch: Math.max(1, options.maxBatch ?? 256),
    writeTimeoutMs: options.writeTimeoutMs ?? 10_000,
    serverSelectionTimeoutMs: options.serverSelectionTimeoutMs ?? 5000,
    heartbeatFrequencyMs: options.heartbeatFrequencyMs ?? 2000,
    maxConflicts: options.maxConflicts ?? 100,
    maxInsertsInFlight: Math.max(1, options.maxInsertsInFlight ?? 2),
    maxInsertDocs: Math.max(1, options.maxInsertDocs ?? 1000),
    precheck: options.precheck ?? false,
    slowCommandMs: options.slowCommandMs ?? 0,
    writeConcern: options.writeConcern ?? { w: 'majority', journal: true },
  };
}

export const noLog: StoreLogger = { info: () => {}, warn: () => {} };

/** The connection string without credentials, for messages and logs. */
export function describeWhere(opts: ResolvedOptions): string {
  return `${opts.url.replace(/\/\/[^@/]*@/, '//***@')} db ${opts.dbName}`;
}
