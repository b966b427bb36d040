import { isIP } from 'node:net';
import { ChatError } from '../errors.js';

const HOSTNAME = /^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$/;

interface HostPort {
  host: string;
  port: number;
  family: 0 | 4 | 6;
}

function hostPort(text: string, what: string): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 1 && port <= 65_535)) {
    throw new ChatError(
      'CONFIG',
      `target: ${what} ${JSON.stringify(text)} is not host:port (port 1-65535, IPv6 in brackets: [::1]:50051)`,
    );
  }
  const host = m[1] ?? m[2]!;
  const family = isIP(host) as 0 | 4 | 6;
  if (m[1] !== undefined && family !== 6) {
    throw new ChatError('CONFIG', `target: ${JSON.stringify(m[1])} in brackets is not an IPv6 address`);
  }
  if (family === 6 && m[1] === undefined) {
    throw new ChatError('CONFIG', `target: put the IPv6 address of ${JSON.stringify(text)} in brackets`);
  }
  if (family === 0 && !HOSTNAME.test(host)) {
    throw new ChatError('CONFIG', `target: ${JSON.stringify(host)} is not a host name or IP address`);
  }
  return { host, port, family };
}

function staticList(addresses: string[]): string {
  const parsed = addresses.map((a) => hostPort(a.trim(), 'address'));
  const named = parsed.find((p) => p.family === 0);
  if (named) {
    throw new ChatError(
      'CONFIG',
      `target: a list takes IP addresses (127.0.0.1:50051), not names like ${JSON.stringify(named.host)}; ` +
        'for a name that resolves to several addresses use "dns:///name:port"',
    );
  }
  const family = parsed[0]!.family;
  if (parsed.some((p) => p.family !== family)) {
    throw new ChatError('CONFIG', 'target: a list cannot mix IPv4 and IPv6 addresses');
  }
  return family === 4
    ? `ipv4:${parsed.map((p) => `${p.host}:${p.port}`).join(',')}`
    : `ipv6:${parsed.map((p) => `[${p.host}]:${p.port}`).join(',')}`;
}

/**
 * A grpc-js channel target from what users write, checked up front so a typo fails at
 * construction with a message naming it rather than as endless UNAVAILABLE retries:
 *
 * - `dns:///host:port` (also `dns:host:port`): resolved by DNS, every address used (round robin);
 * - `host:port`: the same as `dns:///host:port`;
 * - a list `['127.0.0.1:50051', '127.0.0.1:50052']` or `'a:p,b:p'`, or grpc-js's own
 *   `ipv4:127.0.0.1:50051,127.0.0.1:50052` / `ipv6:[::1]:50051,…`: a static set of addresses;
 * - `unix:/path` (or `unix:///path`): a Unix socket, passed through.
 */
export function grpcTarget(input: string | readonly string[]): string {
  if (Array.isArray(input)) {
    if (input.length === 0) throw new ChatError('CONFIG', 'target: at least one address');
    if (input.some((a) => typeof a !== 'string'))
      throw new ChatError('CONFIG', 'target: addresses are strings');
    return input.length === 1 ? grpcTarget(input[0]!) : staticList([...input]);
  }
  if (typeof input !== 'string' || input.trim().length === 0) {
    throw new ChatError(
      'CONFIG',
      'target: required, e.g. "dns:///chat.example.com:50051" or "127.0.0.1:50051"',
    );
  }
  const text = input.trim();
  const dns = /^dns:(?:\/\/[^/]*\/)?(.*)$/.exec(text);
  if (dns) {
    const hp = hostPort(dns[1]!, 'dns target');
    return `dns:///${hp.family === 6 ? `[${hp.host}]` : hp.host}:${hp.port}`;
  }
  const fixed = /^(ipv4|ipv6):(.*)$/.exec(text);
  if (fixed) {
    const list = staticList(fixed[2]!.split(','));
    if (!list.startsWith(`${fixed[1]}:`)) {
      throw new ChatError('CONFIG', `target: ${JSON.stringify(text)} holds addresses of the other IP family`);
    }
    return list;
  }
  if (/^unix:/.test(text)) {
    if (text.replace(/^unix:(\/\/)?/, '').length === 0)
      throw new ChatError('CONFIG', 'target: unix: needs a path');
    return text;
  }
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(text)) {
    throw new ChatError(
      'CONFIG',
      `target: ${JSON.stringify(text)} is not a gRPC target; use "host:port", "dns:///host:port", ` +
        'a list of addresses or "ipv4:a:p,b:p" (gRPC has its own port: GRPC_PORT, default 50051)',
    );
  }
  if (text.includes(',')) return staticList(text.split(','));
  const hp = hostPort(text, 'target');
  return `dns:///${hp.family === 6 ? `[${hp.host}]` : hp.host}:${hp.port}`;
}
