import { Chat } from '@switchboard/protocol';
import { ChatError } from './errors.js';
import { bridgeRefusal, type Refused } from './refusal.js';
import type { JoinResult, RoomHost } from './room-types.js';

/**
 * One join attempt's frames: the room's live and presence registrations, then `chat.join`. A
 * refusal of any of the three fails the attempt, named after the room.
 */
export class JoinAttempt {
  private joining = true;
  private refusedRegistration: ChatError | undefined;
  private readonly refusal: (reason: string, message?: string) => ChatError;

  constructor(
    private readonly host: RoomHost,
    private readonly room: string,
  ) {
    this.refusal = (reason, message) => bridgeRefusal(`joining ${room}`, reason, message);
  }

  /**
   * Registers, then requests `chat.join` for what was stored after `since`. Throws DISCONNECTED
   * at once when not connected.
   */
  request(resume: { since?: number; resumeToken?: string }): Promise<JoinResult> {
    const { host, room } = this;
    // A registration refused after the join (it never is: the bridge answers frames in order)
    // would leave the room deaf: said, not swallowed.
    const onRefused: Refused = (reason, message) => {
      if (this.joining) this.refusedRegistration ??= this.refusal(reason, message);
      else host.reportError(this.refusal(reason, message));
    };
    // Register first: whatever is published from now on reaches us; the join covers the rest.
    // In token mode the bridge refuses all three for a room the token does not grant.
    host.register(Chat.room(room), onRefused);
    host.register(Chat.presence(room), onRefused);
    // The bridge answers a socket's frames in order: once chat.join is answered, so are both
    // registrations, and a join that fails then leaves no refusal of its frames in flight.
    return host.request(
      Chat.join,
      {
        room,
        user: host.user,
        ...(resume.since !== undefined ? { since: resume.since } : {}),
        ...(resume.resumeToken !== undefined ? { resumeToken: resume.resumeToken } : {}),
      },
      this.refusal,
    );
  }

  /** Throws when a registration was refused or the reply is not a join's. */
  check(reply: JoinResult): void {
    if (this.refusedRegistration) throw this.refusedRegistration;
    if (typeof reply !== 'object' || reply === null || typeof reply.lastSeq !== 'number') {
      throw new ChatError('INVALID', 'chat.join: malformed reply');
    }
  }

  /** What the attempt failed with: a refused registration, else `err`. */
  failure(err: unknown): unknown {
    return this.refusedRegistration ?? err;
  }

  /** The attempt is over: a refusal from now on is reported, not taken for the attempt's. */
  end(): void {
    this.joining = false;
  }
}
