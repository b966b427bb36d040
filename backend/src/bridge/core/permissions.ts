/** Vert.x's PermittedOptions: a frame passes when any entry matches it. */
export interface PermittedOptions {
  /** Exact address. */
  address?: string | undefined;
  /** Regular expression the whole address must match. */
  addressRegex?: string | undefined;
  /** Every field here must be present with the same value in the (JSON object) body. */
  match?: Record<string, unknown> | undefined;
  /** The principal must hold this authority. */
  requiredAuthority?: string | undefined;
}

export interface CompiledPermission {
  address?: string;
  regex?: RegExp;
  match?: Record<string, unknown>;
  requiredAuthority?: string;
}

export function compilePermissions(list: PermittedOptions[]): CompiledPermission[] {
  return list.map((p) => {
    const c: CompiledPermission = {};
    if (p.address !== undefined) c.address = p.address;
    if (p.addressRegex !== undefined) c.regex = new RegExp(`^(?:${p.addressRegex})$`);
    if (p.match !== undefined) c.match = p.match;
    if (p.requiredAuthority !== undefined) c.requiredAuthority = p.requiredAuthority;
    return c;
  });
}

export type PermissionVerdict = 'allowed' | 'denied' | 'needs_login';

/**
 * Deny by default. An entry with a `requiredAuthority` that the principal lacks answers
 * `needs_login` when there is no principal (Vert.x's `not_logged_in`) and `denied` otherwise.
 */
export function checkPermission(
  permissions: CompiledPermission[],
  address: string,
  body: unknown,
  authorities: ReadonlySet<string> | undefined,
): PermissionVerdict {
  let needsLogin = false;
  for (const p of permissions) {
    if (p.address !== undefined && p.address !== address) continue;
    if (p.regex !== undefined && !p.regex.test(address)) continue;
    if (p.address === undefined && p.regex === undefined) continue; // an entry must name addresses
    if (p.match !== undefined && !matches(p.match, body)) continue;
    if (p.requiredAuthority !== undefined) {
      if (!authorities) {
        needsLogin = true;
        continue;
      }
      if (!authorities.has(p.requiredAuthority)) continue;
    }
    return 'allowed';
  }
  return needsLogin ? 'needs_login' : 'denied';
}

function matches(match: Record<string, unknown>, body: unknown): boolean {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const b = body as Record<string, unknown>;
  try {
    return Object.entries(match).every(([k, v]) => deepEqual(v, b[k]));
  } catch {
    return false; // nesting too deep to compare: not a match
  }
}

/** JSON value equality, key order ignored. */
function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ak = Object.keys(a);
  const bk = Object.keys(b);
  if (ak.length !== bk.length) return false;
  return ak.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
