import { ChatError } from './errors.js';
import { bridgeRefusal, type Refused } from './refusal.js';
import type { JoinResult, RoomHost, RoomTransport } from './room-types.js';

/**
 * One join attempt: the room's live feed started, then `chat.join` (on the bus: the live and
 * presence registrations, then the request). A refusal of any of them fails the attempt, named
 * after the room.
 */
export class JoinAttempt {
  private joining = true;
  private refusedRegistration: ChatError | undefined;
  private readonly refusal: (reason: string, message?: string) => ChatError;

  constructor(
    private readonly host: RoomHost,
    private readonly transport: RoomTransport,
    private readonly room: string,
  ) {
    this.refusal = (reason, message) => bridgeRefusal(`joining ${room}`, reason, message);
  }

  /**
   * Starts the feed, then joins for what was stored after `since`. Throws DISCONNECTED at once
   * when not connected.
   */
  request(resume: { since?: number; resumeToken?: string }): Promise<JoinResult> {
    const { host, room } = this;
    // A registration refused after the join (it never is: the bridge answers frames in order)
    // would leave the room deaf: said, not swallowed.
    const onRefused: Refused = (reason, message) => {
      if (this.joining) this.refusedRegistration ??= this.refusal(reason, message);
      else host.reportError(this.refusal(reason, message));
    };
    return this.transport.join(
      {
        room,
        user: host.user,
        ...(resume.since !== undefined ? { since: resume.since } : {}),
        ...(resume.resumeToken !== undefined ? { resumeToken: resume.resumeToken } : {}),
      },
      this.refusal,
      onRefused,
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
