/** What the database's errors mean to the store: duplicate keys, and failures to report. */
import { MongoBulkWriteError, MongoServerError } from 'mongodb';

export const DUPLICATE_KEY = 11000;

/**
 * Upserts of one `_id` by two nodes at once: one inserts, the other fails with a duplicate key
 * (MongoDB and FerretDB alike); the document is there either way, which is all an upsert that only
 * inserts wants. Anything else is rethrown.
 */
export function ignoreInsertRace(err: unknown): void {
  if (err instanceof MongoBulkWriteError && !err.err) {
    const errors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
    if (errors.length > 0 && errors.every((e) => e.code === DUPLICATE_KEY)) return;
  }
  if (err instanceof MongoServerError && err.code === DUPLICATE_KEY) return;
  throw err;
}

/**
 * Index of the first document rejected by a unique index (earlier ones of an ordered insert are
 * stored), or undefined when the write failed otherwise and its outcome is unknown.
 */
export function duplicateIndex(err: unknown, count: number): number | undefined {
  if (err instanceof MongoBulkWriteError) {
    if (err.err) return undefined; // a write concern error: the inserted ones may not be durable
    const writeErrors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
    const first = writeErrors[0];
    if (!first || first.code !== DUPLICATE_KEY) return undefined;
    return first.index >= 0 && first.index < count ? first.index : undefined;
  }
  if (err instanceof MongoServerError && err.code === DUPLICATE_KEY && count === 1) return 0;
  return undefined;
}

export function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
