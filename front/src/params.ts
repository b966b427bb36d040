import { ROOM_NAME_RULE, ROOM_PATTERN, USER_NAME_MAX_LENGTH } from '@switchboard/protocol';

/** What the page takes from its URL: `?room=`, `?name=`, `?ytid=`. Anything malformed is ignored. */
export interface PageParams {
  room?: string;
  name?: string;
  ytid?: string;
}

/** YouTube video ids: 11 URL-safe characters (a little slack for the future). */
const YTID_PATTERN = /^[A-Za-z0-9_-]{6,20}$/;

export function readParams(search: string): PageParams {
  const q = new URLSearchParams(search);
  const params: PageParams = {};
  const room = q.get('room')?.trim();
  if (room && ROOM_PATTERN.test(room)) params.room = room;
  const name = q.get('name')?.trim();
  if (name && name.length <= USER_NAME_MAX_LENGTH) params.name = name;
  const ytid = q.get('ytid')?.trim();
  if (ytid && YTID_PATTERN.test(ytid)) params.ytid = ytid;
  return params;
}

/** The user name must be what the server accepts: 1 to USER_NAME_MAX_LENGTH characters, no control characters. */
export function checkName(name: string): string | undefined {
  const n = name.trim();
  if (n.length === 0) return 'Enter a name.';
  if (n.length > USER_NAME_MAX_LENGTH) return `A name has at most ${USER_NAME_MAX_LENGTH} characters.`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(n)) return 'A name cannot hold control characters.';
  return undefined;
}

export function checkRoom(room: string): string | undefined {
  if (!ROOM_PATTERN.test(room.trim())) return `A room name is ${ROOM_NAME_RULE}.`;
  return undefined;
}
