/**
 * HAProxy (Debian package) in front of backend processes on 127.0.0.1, as the Kubernetes Service
 * / Ingress stand-in: health checks on `/ready`, WebSocket upgrades passed through, long tunnel
 * timeouts. Servers are declared up front by port (a slot whose port nothing listens on yet is
 * simply down), so scale-up is "start a node on a declared port" and a restart keeps its port.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDebianPackages } from './debian.js';
import { type ManagedProcess, freePort, startProcess, waitFor } from './proc.js';

export interface HaproxyOptions {
  /** HTTP ports of the backend slots (127.0.0.1). */
  serverPorts: number[];
  /** Health check interval (default 500 ms); a server is down after 2 failed checks. */
  checkIntervalMs?: number;
}

export type ServerState = 'UP' | 'DOWN' | 'MAINT' | 'NOLB' | string;

export interface Haproxy {
  /** `http://127.0.0.1:<port>`: where clients connect. */
  url: string;
  port: number;
  proc: ManagedProcess;
  /** Each slot's state and current sessions, from the stats socket (`show stat`). */
  servers(): Promise<{ name: string; port: number; status: ServerState; sessions: number; total: number }[]>;
  /** Waits until the slot of `port` has the given state. */
  waitForServer(port: number, status: 'UP' | 'DOWN', timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

function config(port: number, socket: string, serverPorts: number[], interMs: number): string {
  return `global
  maxconn 9000
  stats socket ${socket} mode 600 level admin

defaults
  mode http
  timeout connect 2s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  timeout http-request 10s
  option redispatch
  retries 2

frontend switchboard
  bind 127.0.0.1:${port}
  default_backend nodes

backend nodes
  balance leastconn
  option httpchk GET /ready
  http-check expect status 200
  default-server inter ${interMs}ms fastinter ${interMs}ms downinter ${interMs}ms fall 2 rise 1
${serverPorts.map((p, i) => `  server node${i} 127.0.0.1:${p} check`).join('\n')}
`;
}

async function statsCommand(socket: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(socket);
    let out = '';
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`haproxy stats socket: no answer to ${command}`));
    }, 5_000);
    conn.on('connect', () => conn.write(`${command}\n`));
    conn.on('data', (d) => (out += d.toString()));
    conn.on('end', () => {
      clearTimeout(timer);
      resolve(out);
    });
    conn.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export async function startHaproxy(opts: HaproxyOptions): Promise<Haproxy> {
  const [binary] = await ensureDebianPackages(['haproxy']);
  const dir = await mkdtemp(join(tmpdir(), 'sb-haproxy-'));
  const port = await freePort();
  const socket = join(dir, 'stats.sock');
  const cfg = join(dir, 'haproxy.cfg');
  await writeFile(cfg, config(port, socket, opts.serverPorts, opts.checkIntervalMs ?? 500));
  const check = startProcess('haproxy-check', binary!, ['-c', '-f', cfg]);
  const checked = await check.exited;
  if (checked.code !== 0) throw new Error(`haproxy rejected its configuration:\n${check.output()}`);
  // -db: stay in the foreground; -W: master-worker so SIGTERM stops it cleanly.
  const proc = startProcess('haproxy', binary!, ['-W', '-db', '-f', cfg]);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    'haproxy to listen',
    () => {
      if (!proc.isRunning()) throw new Error(`haproxy exited:\n${proc.output().slice(-2000)}`);
      return new Promise<boolean>((resolve) => {
        const c = createConnection({ host: '127.0.0.1', port }, () => {
          c.destroy();
          resolve(true);
        });
        c.on('error', () => resolve(false));
      });
    },
    10_000,
  );

  const servers: Haproxy['servers'] = async () => {
    const csv = await statsCommand(socket, 'show stat');
    const lines = csv.split('\n').filter((l) => l.startsWith('nodes,node'));
    return lines.map((l) => {
      const f = l.split(',');
      const name = f[1]!;
      return {
        name,
        port: opts.serverPorts[Number(name.slice('node'.length))]!,
        status: f[17]!.split(' ')[0]!,
        sessions: Number(f[4]),
        total: Number(f[7]),
      };
    });
  };

  return {
    url,
    port,
    proc,
    servers,
    async waitForServer(p, status, timeoutMs = 15_000) {
      await waitFor(
        `haproxy to see 127.0.0.1:${p} ${status}`,
        async () => (await servers()).find((s) => s.port === p)?.status === status,
        timeoutMs,
      );
    },
    async stop() {
      await proc.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
