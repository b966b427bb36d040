import { ChatError } from '../errors.js';

export class ProbeAbort extends Error {}

export function describe(err: unknown): string {
  if (err instanceof ChatError)
    return `${err.failureType}${err.code !== -1 ? ` ${err.code}` : ''}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
