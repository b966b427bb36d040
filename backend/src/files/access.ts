import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Principal } from '../auth/principal.js';
import type { FileMeta } from './file-store.js';

/**
 * Who may read a file (auth mode): its uploader, and whoever may read the room it belongs to
 * (the token's `rooms` claim, as for chat.history). A file not yet in a room is its uploader's.
 */
export function mayRead(meta: FileMeta, principal: Principal): boolean {
  if (meta.user !== undefined && meta.user === principal.user) return true;
  if (meta.room === undefined) return false;
  return principal.rooms === undefined || principal.rooms.has(meta.room);
}

/**
 * Short-lived signed links (`/files/<id>?exp=…&sig=…`) for where a header cannot go, e.g. an
 * `<img src>`: an HMAC of the id and expiry under a key derived from AUTH_TOKEN_SECRET.
 */
export class FileLinks {
  private readonly key: Buffer;

  constructor(
    secret: string,
    readonly ttlMs: number,
  ) {
    this.key = createHmac('sha256', secret).update('switchboard file links v1').digest();
  }

  sign(id: string, now = Date.now()): { url: string; expiresAt: number } {
    const exp = Math.ceil((now + this.ttlMs) / 1000);
    return { url: `/files/${id}?exp=${exp}&sig=${this.mac(id, exp)}`, expiresAt: exp * 1000 };
  }

  verify(id: string, exp: string | undefined, sig: string | undefined, now = Date.now()): boolean {
    if (!exp || !sig || !/^\d{1,12}$/.test(exp)) return false;
    if (Number(exp) * 1000 < now) return false;
    const want = Buffer.from(this.mac(id, Number(exp)));
    const got = Buffer.from(sig);
    return want.length === got.length && timingSafeEqual(want, got);
  }

  private mac(id: string, exp: number): string {
    return createHmac('sha256', this.key).update(`${id}.${exp}`).digest('base64url');
  }
}

export interface UploadLimitsConfig {
  uploadsPerMinute: number;
  bytesPerHour: number;
}

interface Usage {
  /** Upload starts in the current minute and bytes in the current hour (fixed windows). */
  minute: number;
  uploads: number;
  hour: number;
  bytes: number;
}

/**
 * Upload rate and volume per uploader (the verified user, or the client's address in open
 * mode), per node. Fixed windows: at most `uploadsPerMinute` uploads started in a clock minute
 * and `bytesPerHour` bytes in a clock hour.
 */
export class UploadLimits {
  private readonly usage = new Map<string, Usage>();

  constructor(readonly config: UploadLimitsConfig) {}

  /** Starts an upload: the most bytes it may carry, or a refusal naming the limit. */
  start(who: string, now = Date.now()): { ok: true; bytesLeft: number } | { ok: false; message: string } {
    const u = this.current(who, now);
    if (u.uploads >= this.config.uploadsPerMinute)
      return { ok: false, message: `at most ${this.config.uploadsPerMinute} uploads a minute` };
    const bytesLeft = this.config.bytesPerHour - u.bytes;
    if (bytesLeft <= 0) return { ok: false, message: `at most ${this.config.bytesPerHour} bytes an hour` };
    u.uploads++;
    return { ok: true, bytesLeft };
  }

  /** Counts the bytes an upload took (refused or not: they were read). */
  used(who: string, bytes: number, now = Date.now()): void {
    this.current(who, now).bytes += bytes;
  }

  private current(who: string, now: number): Usage {
    const minute = Math.floor(now / 60_000);
    const hour = Math.floor(now / 3_600_000);
    let u = this.usage.get(who);
    if (!u) {
      if (this.usage.size > 10_000) this.sweep(hour);
      u = { minute, uploads: 0, hour, bytes: 0 };
      this.usage.set(who, u);
    }
    if (u.minute !== minute) [u.minute, u.uploads] = [minute, 0];
    if (u.hour !== hour) [u.hour, u.bytes] = [hour, 0];
    return u;
  }

  private sweep(hour: number): void {
    for (const [who, u] of this.usage) if (u.hour !== hour) this.usage.delete(who);
  }
}
