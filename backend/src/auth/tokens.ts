import { errors, jwtVerify } from 'jose';
import type { Principal } from './principal.js';

export class TokenError extends Error {
  override readonly name = 'TokenError';
}

const ALGORITHMS = ['HS256', 'HS384', 'HS512'];

/** Verifies an HMAC-signed JWT and turns its claims into a Principal. */
export class TokenVerifier {
  private readonly key: Uint8Array;

  constructor(secret: string) {
    this.key = new TextEncoder().encode(secret);
  }

  async verify(token: string | undefined): Promise<Principal> {
    if (!token) throw new TokenError('no token');
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.key, {
        algorithms: ALGORITHMS,
        requiredClaims: ['sub', 'exp'],
      }));
    } catch (err) {
      if (err instanceof errors.JWTExpired) throw new TokenError('token expired');
      if (err instanceof errors.JWSSignatureVerificationFailed) throw new TokenError('bad token signature');
      if (err instanceof errors.JOSEAlgNotAllowed)
        throw new TokenError('token algorithm not allowed (HS256/384/512)');
      if (err instanceof errors.JWTClaimValidationFailed)
        throw new TokenError(`token claim ${err.claim}: ${err.reason}`);
      throw new TokenError('malformed token');
    }
    const sub = payload.sub;
    if (typeof sub !== 'string' || sub.length === 0 || sub.length > 64) {
      throw new TokenError('token sub: expected a user name of 1-64 characters');
    }
    // The name is used as it is signed: one that chat would trim or refuse is refused here, so
    // " ana " can never act as "ana".
    // eslint-disable-next-line no-control-regex
    if (sub.trim() !== sub || /[\u0000-\u001f\u007f]/.test(sub)) {
      throw new TokenError('token sub: no leading or trailing spaces and no control characters');
    }
    const rooms = stringList(payload.rooms, 'rooms');
    const authorities = stringList(payload.authorities, 'authorities');
    return {
      user: sub,
      rooms: rooms === undefined || rooms.includes('*') ? undefined : new Set(rooms),
      authorities: new Set(authorities ?? []),
      expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined,
    };
  }
}

function stringList(value: unknown, claim: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new TokenError(`token ${claim}: expected an array of strings`);
  }
  return value as string[];
}
