import type { Principal } from '../../auth/principal.js';
import { TokenError, type TokenVerifier } from '../../auth/tokens.js';

/** How a connection's token check ended: its principal, or why it is refused. */
export type Handshake =
  | { readonly principal: Principal }
  | { readonly refused: 'not_logged_in' | 'auth_error'; readonly reason: string };

/**
 * Checks a new connection's token, as every bridge does before the connection may do anything:
 * no token is `not_logged_in`, a token that does not verify `auth_error`, with the verifier's
 * reason (never the details of an unexpected failure).
 */
export async function verifyToken(verifier: TokenVerifier, token: string | undefined): Promise<Handshake> {
  try {
    return { principal: await verifier.verify(token) };
  } catch (err) {
    const reason = err instanceof TokenError ? err.message : 'token check failed';
    return { refused: token ? 'auth_error' : 'not_logged_in', reason };
  }
}

const MAX_TIMER_MS = 2_147_483_647;

/**
 * Calls `expired` when the principal's token expires (at once if it has), so that a bridge ends
 * the connection then; nothing for a principal without expiry. Returns what cancels the timer.
 */
export function atTokenExpiry(principal: Principal | undefined, expired: () => void): () => void {
  if (principal?.expiresAt === undefined) return () => {};
  const expiresAt = principal.expiresAt;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    const left = expiresAt - Date.now();
    if (left <= 0) return expired();
    // setTimeout cannot wait past 2^31-1 ms: long-lived tokens re-arm until their time comes.
    timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}
