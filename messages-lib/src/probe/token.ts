/// <reference types="node" />
import { createHmac } from 'node:crypto';

/**
 * An HS256 JWT for `user`, as a server with AUTH_TOKEN_SECRET accepts it (`sub` = the user,
 * `exp` required). No `rooms` claim: every room is granted.
 */
export function signProbeToken(secret: string, user: string, validForS = 3_600, now = Date.now()): string {
  const iat = Math.floor(now / 1000);
  const header = base64url({ alg: 'HS256', typ: 'JWT' });
  const payload = base64url({ sub: user, iat, exp: iat + validForS });
  const signature = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

function base64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
