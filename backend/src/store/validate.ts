import { randomBytes, randomUUID } from 'node:crypto';
import { StoreError } from './types.js';
import type { AppendInput, ChatMessage, FileRef, HistoryQuery } from './types.js';

/**
 * Limits the store enforces itself. The chat layer validates its own (tighter) limits; these are
 * the backstop that keeps junk from reaching the disk or the database (e.g. a 16 MB BSON limit).
 */
export const STORE_LIMITS = {
  roomLength: 512,
  userLength: 256,
  clientMsgIdLength: 256,
  textLength: 1_048_576,
  fileIdLength: 256,
  fileNameLength: 1024,
  contentTypeLength: 256,
  /** Largest `limit` a history/latest call may ask for (above CHAT_JOIN_MAX's bound of 10 000 + 1). */
  queryLimit: 20_000,
} as const;

// Lone surrogates cannot be encoded as UTF-8: BSON would turn them into U+FFFD, so the stored text
// would differ from what was acked.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function invalid(message: string): StoreError {
  return new StoreError('INVALID', message);
}

function checkString(value: unknown, field: string, max: number, allowEmpty = false): string {
  if (typeof value !== 'string' || (!allowEmpty && value.length === 0) || value.length > max) {
    throw invalid(`${field} must be a ${allowEmpty ? '' : 'non-empty '}string of at most ${max} characters`);
  }
  if (LONE_SURROGATE.test(value)) throw invalid(`${field} must be well-formed Unicode (lone surrogate)`);
  return value;
}

export function checkRoom(room: unknown): string {
  return checkString(room, 'room', STORE_LIMITS.roomLength);
}

export function checkLimit(limit: unknown): number {
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > STORE_LIMITS.queryLimit) {
    throw invalid(`limit must be an integer from 1 to ${STORE_LIMITS.queryLimit}`);
  }
  return limit;
}

function checkSeqBound(value: unknown, field: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(`${field} must be a non-negative integer`);
  }
  return value;
}

function checkFile(file: unknown): FileRef {
  if (typeof file !== 'object' || file === null || Array.isArray(file)) {
    throw invalid('file must be an object {id, name, size, contentType}');
  }
  const f = file as Record<string, unknown>;
  const size = f.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw invalid('file.size must be a non-negative integer');
  }
  // Copy only the known fields: nothing the client adds (e.g. `$`-keys) reaches the database.
  return {
    id: checkString(f.id, 'file.id', STORE_LIMITS.fileIdLength),
    name: checkString(f.name, 'file.name', STORE_LIMITS.fileNameLength),
    size,
    contentType: checkString(f.contentType, 'file.contentType', STORE_LIMITS.contentTypeLength),
  };
}

/** Validates an append and returns a clean copy holding only the known fields. */
export function checkAppend(input: unknown): AppendInput {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw invalid('append input must be an object');
  }
  const i = input as Record<string, unknown>;
  const out: AppendInput = {
    room: checkRoom(i.room),
    user: checkString(i.user, 'user', STORE_LIMITS.userLength),
    clientMsgId: checkString(i.clientMsgId, 'clientMsgId', STORE_LIMITS.clientMsgIdLength),
  };
  if (i.text !== undefined) out.text = checkString(i.text, 'text', STORE_LIMITS.textLength, true);
  if (i.file !== undefined) out.file = checkFile(i.file);
  if (out.text === undefined && out.file === undefined) throw invalid('text or file is required');
  return out;
}

export interface CheckedHistoryQuery {
  afterSeq: number | undefined;
  beforeSeq: number | undefined;
  limit: number;
}

export function checkHistory(query: unknown): CheckedHistoryQuery {
  if (typeof query !== 'object' || query === null || Array.isArray(query)) {
    throw invalid('history query must be an object {afterSeq?, beforeSeq?, limit}');
  }
  const q = query as Partial<Record<keyof HistoryQuery, unknown>>;
  return {
    afterSeq: checkSeqBound(q.afterSeq, 'afterSeq'),
    beforeSeq: checkSeqBound(q.beforeSeq, 'beforeSeq'),
    limit: checkLimit(q.limit),
  };
}

/** The stored message for a validated input, its fields in the wire order of docs/chat.md. */
export function buildMessage(input: AppendInput, seq: number, id: string = randomUUID()): ChatMessage {
  return orderMessage({ ...input, seq, id, ts: Date.now() });
}

/** A ChatMessage holding exactly the known fields in one fixed order (drops e.g. a database `_id`). */
export function orderMessage(m: ChatMessage): ChatMessage {
  const message: ChatMessage = {
    room: m.room,
    seq: m.seq,
    id: m.id,
    clientMsgId: m.clientMsgId,
    user: m.user,
  } as ChatMessage;
  if (m.text !== undefined && m.text !== null) message.text = m.text;
  if (m.file !== undefined && m.file !== null) {
    message.file = { id: m.file.id, name: m.file.name, size: m.file.size, contentType: m.file.contentType };
  }
  message.ts = m.ts;
  return message;
}

/** A fresh store epoch (see MessageStore.epoch): 96 random bits. */
export function newEpoch(): string {
  return randomBytes(12).toString('base64url');
}
