/**
 * What every abuse spec needs: a real node (the product's main.ts, embedded store) in its own
 * process, its RSS, its /health, and a bystander that chats on it while the attack runs, from
 * its own loopback address (127.0.0.3) so that the per-address caps the attacks hit (they come
 * from 127.0.0.1) are not the bystander's.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { ChatClient, type Room } from '../../messages-lib/src/index.js';
import { type ManagedProcess, startProcess } from '../infra/proc.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const mainTs = join(repoRoot, 'backend/src/main.ts');

/**
 * The RSS every attack must keep the node under. The node starts at ~150 MiB (tsx, embedded
 * store); before the fixes the amplified reads took it past 4 GiB and out of heap; with them the
 * worst attack of the suite peaks near 600 MiB.
 */
export const RSS_BOUND_MIB = 1024;

/** The address the bystander connects from: not the attackers' 127.0.0.1. */
export const BYSTANDER_ADDRESS = '127.0.0.3';

export class AbuseNode {
  private constructor(
    readonly proc: ManagedProcess,
    readonly url: string,
    readonly adminUrl: string,
    readonly grpcPort: number,
    readonly dataDir: string,
  ) {}

  static async start(name: string, env: Record<string, string> = {}): Promise<AbuseNode> {
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-abuse-'));
    const proc = startProcess(name, process.execPath, ['--import', 'tsx', mainTs], {
      cwd: repoRoot,
      env: {
        HOST: '127.0.0.1',
        PORT: '0',
        ADMIN_PORT: '0',
        GRPC_PORT: '0',
        LOG_LEVEL: 'info',
        DATA_DIR: dataDir,
        ...env,
      },
    });
    const http = (await proc.waitForOutput(/node listening on (http:\/\/[^"\s]+)/, 60_000)) as
      RegExpMatchArray | string;
    const admin = (await proc.waitForOutput(
      /admin \S+ \S+ listening on ([^:]+):(\d+)/,
      60_000,
    )) as RegExpMatchArray;
    const grpc = (await proc.waitForOutput(/gRPC listening on [^:]+:(\d+)/, 60_000)) as RegExpMatchArray;
    return new AbuseNode(
      proc,
      (http as RegExpMatchArray)[1]!,
      `http://127.0.0.1:${admin[2]}`,
      Number(grpc[1]),
      dataDir,
    );
  }

  /** Resident set size of the node process, in MiB. */
  rssMiB(): number {
    const status = readFileSync(`/proc/${this.proc.pid}/status`, 'utf8');
    const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
    return kb / 1024;
  }

  /** The node runs, under RSS_BOUND_MIB, and /health answers 200 on the public port. */
  async expectHealthy(): Promise<void> {
    expect(this.proc.isRunning(), `the node is running\n${this.proc.output().slice(-3000)}`).to.equal(true);
    expect(this.rssMiB(), 'RSS (MiB)').to.be.below(RSS_BOUND_MIB);
    const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(10_000) });
    expect(res.status, '/health').to.equal(200);
  }

  async stop(): Promise<void> {
    await this.proc.stop(10_000);
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

/** `ws`'s WebSocket bound to a given local address. */
export function webSocketFrom(localAddress: string): typeof WebSocket {
  return class extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { localAddress });
    }
  } as unknown as typeof WebSocket;
}

/**
 * A user chatting on the node during an attack: sends one message at a time, each awaiting its ack
 * (the client's own bounded timeout), and checks that every message comes back on the room.
 */
export class Bystander {
  private client!: ChatClient;
  private room!: Room;
  private running = false;
  private loop: Promise<void> | undefined;
  readonly errors: string[] = [];
  sent = 0;

  static async join(node: AbuseNode, roomName: string, opts: { token?: string } = {}): Promise<Bystander> {
    const b = new Bystander();
    b.client = new ChatClient({
      url: node.url,
      user: `bystander-${process.pid}`,
      WebSocket: webSocketFrom(BYSTANDER_ADDRESS) as never,
      ...(opts.token ? { token: opts.token } : {}),
    });
    await b.client.connect();
    b.room = await b.client.join(roomName);
    return b;
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        try {
          await this.room.send(`still here ${this.sent}`);
          this.sent++;
        } catch (err) {
          this.errors.push(String(err));
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
  }

  /** Stops and asserts: no error, at least one message acked during the attack. */
  async stopAndCheck(): Promise<void> {
    this.running = false;
    await this.loop;
    expect(this.errors, 'the bystander saw errors').to.deep.equal([]);
    expect(this.sent, 'the bystander chatted during the attack').to.be.greaterThan(0);
  }

  async close(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.client?.close();
  }
}
