import { Client, type ILogger, type LifecycleState, LogLevel } from 'hazelcast-client';

export type HazelcastClient = Awaited<ReturnType<typeof Client.newHazelcastClient>>;

export interface ClusterLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug?(obj: object, msg: string): void;
}

export const noLog: ClusterLogger = { info: () => {}, warn: () => {} };

/** Routes the Hazelcast client's own log lines into ours: its warnings stay warnings, the rest is debug. */
function clientLogger(log: ClusterLogger): ILogger {
  const write = (level: LogLevel, objectName: string, message: string, furtherInfo?: unknown): void => {
    const obj = { hazelcast: objectName, ...(furtherInfo ? { detail: String(furtherInfo) } : {}) };
    if (level <= LogLevel.WARN) log.warn(obj, message);
    else log.debug?.(obj, message);
  };
  return {
    log: write,
    error: (o, m, f) => write(LogLevel.ERROR, o, m, f),
    warn: (o, m, f) => write(LogLevel.WARN, o, m, f),
    info: (o, m, f) => write(LogLevel.INFO, o, m, f),
    debug: (o, m, f) => write(LogLevel.DEBUG, o, m, f),
    trace: (o, m, f) => write(LogLevel.TRACE, o, m, f),
  };
}

/** Starts node `nodeId`'s Hazelcast client; fails with the settings to check when no member answers. */
export async function connectHazelcast(
  opts: { members: string[]; clusterName: string; connectTimeoutMs: number },
  nodeId: string,
  log: ClusterLogger,
  onLifecycle: (state: LifecycleState) => void,
): Promise<HazelcastClient> {
  return Client.newHazelcastClient({
    customLogger: clientLogger(log),
    clusterName: opts.clusterName,
    instanceName: `switchboard-${nodeId}`,
    network: { clusterMembers: opts.members },
    connectionStrategy: {
      connectionRetry: {
        clusterConnectTimeoutMillis: opts.connectTimeoutMs,
        initialBackoffMillis: 200,
        maxBackoffMillis: 2_000,
        multiplier: 1.5,
        jitter: 0.2,
      },
    },
    properties: {
      // A member that vanished without closing its socket is noticed within seconds.
      'hazelcast.client.heartbeat.interval': 1_000,
      'hazelcast.client.heartbeat.timeout': 5_000,
      'hazelcast.client.invocation.timeout.millis': 15_000,
    },
    lifecycleListeners: [onLifecycle],
  }).catch((err: unknown) => {
    throw new Error(
      `could not reach the Hazelcast cluster "${opts.clusterName}" at ${opts.members.join(', ')} within ${opts.connectTimeoutMs} ms (HAZELCAST_CONNECT_TIMEOUT_MS): ${err instanceof Error ? err.message : String(err)}`,
    );
  });
}
