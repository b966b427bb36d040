import { ChatFailure } from '@switchboard/protocol';
import type { ChatError } from './errors.js';
import { backoffDelay, type BackoffOptions } from './util.js';

/**
 * The server's answer while its message store is slow or has too much work out: a 503 whose text
 * starts `message store busy`. Nothing was stored; the same message may be sent again later.
 */
export function isStoreBusy(err: ChatError): boolean {
  return (
    err.failureType === 'RECIPIENT_FAILURE' &&
    err.code === ChatFailure.UNAVAILABLE &&
    err.message.startsWith('message store busy')
  );
}

/** Backoff attempts a busy store's first refusal counts as: the first retry waits up to 4× baseMs. */
const BUSY_MIN_ATTEMPT = 2;

/**
 * How long to wait before resending the head of the outbox after a retriable failure: exponential
 * backoff with full jitter, as for reconnects. A node shedding load gets the retries of its
 * clients spread over at least 4× baseMs (1 s by default) from the first refusal, not within a few
 * ms of it, so the refusals thin the load instead of coming straight back.
 */
export function sendRetryDelay(
  err: ChatError,
  attempt: number,
  options: BackoffOptions,
  random: () => number,
): number {
  return backoffDelay(isStoreBusy(err) ? Math.max(attempt, BUSY_MIN_ATTEMPT) : attempt, options, random);
}
