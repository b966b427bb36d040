/**
 * Room names become part of bus addresses (`chat.room.<room>`) and of permission regexes, so they
 * keep to a small alphabet that needs no escaping and cannot smuggle a `.` into an address.
 *
 * The source is valid with any flags, `v` included: browsers compile an input's `pattern` with the `v` flag,
 * where an unescaped `-` at the end of a class is a syntax error (the pattern is then ignored).
 */
export const ROOM_NAME_SOURCE = '[A-Za-z0-9_\\-]{1,64}';

export const ROOM_PATTERN = new RegExp(`^${ROOM_NAME_SOURCE}$`);

/** The rule in words, for refusals and form hints. */
export const ROOM_NAME_RULE = '1-64 letters, digits, "_" or "-"';

export const ROOM_NAME_MAX_LENGTH = 64;

export function isRoomName(value: unknown): value is string {
  return typeof value === 'string' && ROOM_PATTERN.test(value);
}

/** Longest user name, in characters (after trimming; control characters are refused). */
export const USER_NAME_MAX_LENGTH = 64;

/** A send's idempotency key: clients make them, the server refuses any other shape. */
export const CLIENT_MSG_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,100}$/;
