import { fileURLToPath } from 'node:url';
import { type ManagedProcess, startProcess } from '../infra/proc.js';

const fixture = fileURLToPath(new URL('../integration/fixtures/bus-node.ts', import.meta.url));
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export interface ReplyResult {
  ok: boolean;
  body?: unknown;
  failureType?: string;
  failureCode?: number;
  message?: string;
}

export interface NodeView {
  nodeId: string;
  connected: boolean;
  nodes: { nodeId: string; host: string; port: number }[];
  subscribers: Record<string, string[]>;
}

/** A backend node process with a control port (see fixtures/bus-node.ts). */
export class BusNode {
  private constructor(
    readonly name: string,
    readonly proc: ManagedProcess,
    readonly controlUrl: string,
    readonly httpUrl: string,
    readonly nodeId: string,
    /** Where the node's gRPC bridge listens on 127.0.0.1. */
    readonly grpcPort: number,
    /** The admin listener: `/prestop`, `/metrics`. */
    readonly adminUrl: string,
  ) {}

  static async start(name: string, env: Record<string, string>): Promise<BusNode> {
    const proc = startProcess(name, process.execPath, ['--import', 'tsx', fixture], {
      cwd: repoRoot,
      env: {
        HOST: '127.0.0.1',
        PORT: '0',
        GRPC_PORT: '0',
        ADMIN_PORT: '0',
        CLUSTER_HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        ...env,
      },
    });
    const m = (await proc.waitForOutput(
      /control listening on (\d+) http (\S+) node (\S+) grpc (\d+) admin (\S+)/,
      60_000,
    )) as RegExpMatchArray;
    return new BusNode(name, proc, `http://127.0.0.1:${m[1]}`, m[2]!, m[3]!, Number(m[4]), m[5]!);
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.controlUrl}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(90_000),
    });
    const json = (await res.json()) as T & { error?: string };
    if (!res.ok) throw new Error(`${this.name} ${path}: ${json.error}`);
    return json;
  }

  consumer(
    address: string,
    behavior:
      | 'echo'
      | 'record'
      | 'headers'
      | 'count'
      | 'fail'
      | 'silent'
      | 'mirror'
      | 'refuse'
      | 'converse'
      | 'relay',
    local = false,
  ) {
    return this.call<{ id: number }>('POST', '/consumer', { address, behavior, local });
  }
  unregister(id: number) {
    return this.call('POST', '/unregister', { id });
  }
  send(address: string, body: unknown, localOnly = false) {
    return this.call('POST', '/send', { address, body, localOnly });
  }
  publish(address: string, body: unknown) {
    return this.call('POST', '/publish', { address, body });
  }
  request(address: string, body: unknown, timeout?: number) {
    return this.call<ReplyResult>('POST', '/request', { address, body, timeout });
  }
  /** A request served by this node's own consumer (as a client connected to this node). */
  requestHere(address: string, body: unknown, timeout?: number, headers?: Record<string, string>) {
    return this.call<ReplyResult>('POST', '/request', { address, body, timeout, localOnly: true, headers });
  }
  /** A request served by this node's consumer when it has one, else by any node's (preferLocal). */
  requestPreferLocal(address: string, body: unknown) {
    return this.call<ReplyResult>('POST', '/request', { address, body, preferLocal: true });
  }
  /** Subscribe streams of the node's gRPC bridge and how many messages they queue (flow control). */
  grpcStats() {
    return this.call<{ subscriptions: number; queued: number; highWater: number }>('GET', '/grpc-stats');
  }
  count(address: string) {
    return this.call<number>('GET', `/count?address=${encodeURIComponent(address)}`);
  }
  received(address: string) {
    return this.call<unknown[]>('GET', `/received?address=${encodeURIComponent(address)}`);
  }
  view(...addresses: string[]) {
    const q = addresses.map((a) => `address=${encodeURIComponent(a)}`).join('&');
    return this.call<NodeView>('GET', `/view?${q}`);
  }
}
