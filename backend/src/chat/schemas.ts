import {
  type ChatLimits,
  CLIENT_MSG_ID_PATTERN,
  ROOM_NAME_RULE,
  ROOM_PATTERN,
  USER_NAME_MAX_LENGTH,
} from '@switchboard/protocol';
import { z } from 'zod';

const room = z.string().regex(ROOM_PATTERN, `room: ${ROOM_NAME_RULE}`);
const user = z
  .string()
  .trim()
  .min(1, 'user: required')
  .max(USER_NAME_MAX_LENGTH, `user: at most ${USER_NAME_MAX_LENGTH} characters`)
  // eslint-disable-next-line no-control-regex
  .refine((u) => !/[\u0000-\u001f\u007f]/.test(u), 'user: no control characters');
/**
 * What text may not hold: control characters other than tab, newline and carriage return (NUL, ESC sequences that
 * drive terminals, C1 controls) and the bidi overrides and isolates that make text read other
 * than it is stored (U+202A–U+202E, U+2066–U+2069).
 */
// eslint-disable-next-line no-control-regex
const FORBIDDEN_IN_TEXT = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

const seq = (name: string) =>
  z.number().int(`${name}: a whole number`).min(0, `${name}: ≥ 0`).max(Number.MAX_SAFE_INTEGER);

export function chatSchemas(limits: ChatLimits) {
  return {
    join: z.strictObject({
      room,
      user,
      since: seq('since').optional(),
      resumeToken: z
        .string()
        .regex(/^[A-Za-z0-9_-]{16,128}$/, 'resumeToken: the token a previous join returned')
        .optional(),
    }),
    send: z
      .strictObject({
        room,
        user,
        clientMsgId: z
          .string()
          .regex(CLIENT_MSG_ID_PATTERN, 'clientMsgId: 1-100 letters, digits, "_", ".", ":" or "-"'),
        text: z
          .string()
          .max(limits.maxTextLength, `text: at most ${limits.maxTextLength} characters`)
          .refine(
            (t) => !FORBIDDEN_IN_TEXT.test(t),
            'text: no control characters (besides tab, newline and carriage return) and no bidi overrides',
          )
          .optional(),
        file: z.strictObject({ id: z.string().min(1).max(64) }).optional(),
      })
      .refine((b) => (b.text !== undefined && b.text.trim().length > 0) || b.file !== undefined, {
        message: 'text or file: a message needs non-blank text or a file',
      }),
    history: z.strictObject({
      room,
      afterSeq: seq('afterSeq').optional(),
      beforeSeq: seq('beforeSeq').optional(),
      limit: z
        .number()
        .int('limit: a whole number')
        .min(1, 'limit: at least 1')
        .max(limits.historyMaxLimit, `limit: at most ${limits.historyMaxLimit}`)
        .default(100),
    }),
    leave: z.strictObject({ room, user }),
  };
}

/** One line naming each offending field, for the failure message. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const field = i.path.join('.');
      if (i.code === 'unrecognized_keys') return `unknown field(s): ${i.keys.join(', ')}`;
      if (!field || i.message.startsWith(`${field}:`)) return i.message;
      return `${field}: ${i.message}`;
    })
    .join('; ');
}
