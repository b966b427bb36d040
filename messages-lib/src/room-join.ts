import { ChatError } from './errors.js';
import { bridgeRefusal, type Refused } from './refusal.js';
import type { JoinResult, RoomHost } from './room-types.js';

/**
 * One join attempt's request: registers the room's live and presence addresses, then asks
 * `chat.join` for what was stored after `since`. Rejects with the refusal of any of the three
 * frames (named after the room), or with what the request failed with.
 */
export async function requestJoin(
  host: RoomHost,
  room: string,
  resume: { since?: number; resumeToken?: string },
): Promise<JoinResult> {
  let joining = true;
  try {
    const refusal = (reason: string, message?: string): ChatError =>
      bridgeRefusal(`joining ${room}`, reason, message);
    let refusedRegistration: ChatError | undefined;
    // A registration refused after the join (it never is: the bridge answers frames in order)
    // would leave the room deaf: said, not swallowed.
    const onRefused: Refused = (reason, message) => {
      if (joining) refusedRegistration ??= refusal(reason, message);
      else host.reportError(refusal(reason, message));
    };
    // Register first: whatever is published from now on reaches us; the join covers the rest.
    // In token mode the bridge refuses all three for a room the token does not grant.
    host.register(`chat.room.${room}`, onRefused);
    host.register(`chat.presence.${room}`, onRefused);
    // The bridge answers a socket's frames in order: once chat.join is answered, so are both
    // registrations, and a join that fails then leaves no refusal of its frames in flight.
    let reply: JoinResult;
    try {
      reply = await host.request<JoinResult>(
        'chat.join',
        {
          room,
          user: host.user,
          ...(resume.since !== undefined ? { since: resume.since } : {}),
          ...(resume.resumeToken !== undefined ? { resumeToken: resume.resumeToken } : {}),
        },
        refusal,
      );
    } catch (err) {
      throw refusedRegistration ?? err;
    }
    if (refusedRegistration) throw refusedRegistration;
    if (typeof reply !== 'object' || reply === null || typeof reply.lastSeq !== 'number') {
      throw new ChatError('INVALID', 'chat.join: malformed reply');
    }
    return reply;
  } finally {
    joining = false;
  }
}
