import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CHAT_REQUEST_ADDRESSES, Chat } from '@switchboard/protocol';
import { pino, type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { HazelcastClusterManager } from './cluster/hazelcast.js';
import { StandaloneClusterManager } from './cluster/standalone.js';
import { TcpTransport } from './eventbus/tcp/tcp-transport.js';
import type { ClusterManager } from './cluster/types.js';
import { type Config, ConfigError, loadConfig } from './config/config.js';
import { CHAT_POLICY_EVENTS, chatBridgePolicy } from './bridge/chat/chat-policy.js';
import { TokenVerifier } from './auth/tokens.js';
import type { BridgeSession } from './bridge/ws/bridge-session.js';
import { CHAT_BRIDGE_PERMISSIONS } from './bridge/chat/chat-permissions.js';
import { bridgeOptions } from './bridge/core/options.js';
import { type GrpcBridgeServer, startGrpcServer } from './bridge/grpc/server.js';
import { sockJsBridgeEndpoint } from './bridge/ws/sockjs-endpoint.js';
import { type BridgeEndpointOptions, wsBridgeEndpoint } from './bridge/ws/ws-endpoint.js';
import { ChatService } from './chat/chat-service.js';
import { ClusteredEventBus } from './eventbus/event-bus.js';
import { FileLinks, UploadLimits } from './files/access.js';
import { FileStore } from './files/file-store.js';
import { createAdminServer } from './http/admin-server.js';
import { filesRoutes } from './http/files-routes.js';
import { frontRoutes } from './http/front-routes.js';
import { createMessageStore } from './store/index.js';
import { layerNodeStore } from './store/node-store.js';
import type { MessageStore } from './store/types.js';
import { Readiness } from './http/readiness.js';
import { createHttpServer } from './http/server.js';
import { drain, exitOnSignals, StoreRecoveryNotice } from './lifecycle/index.js';
import { Metrics } from './metrics/metrics.js';

/**
 * Reconnect requests per second a draining node sends at most (its window shrinks when it has
 * few clients): survivors take ~200 rejoins a second each without a latency spike.
 */
const DRAIN_RECONNECTS_PER_SEC = 200;
/** Longest wait for the store's queued writes during a drain. */
const DRAIN_FLUSH_MAX_MS = 10_000;

export interface RunningNode {
  config: Config;
  nodeId: string;
  bus: ClusteredEventBus;
  cluster: ClusterManager;
  store: MessageStore;
  chat: ChatService;
  http: FastifyInstance;
  /** Where HTTP listens, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** The admin listener (`/prestop`, `/metrics`, `/health`, `/ready`), e.g. `http://127.0.0.1:9090`. */
  adminUrl: string;
  admin: FastifyInstance;
  /** The gRPC bridge (EventBusBridge, Chat, health, reflection). */
  grpc: GrpcBridgeServer;
  /** Where gRPC listens (the actual port when GRPC_PORT=0). */
  grpcPort: number;
  /** Prometheus metrics (`GET /metrics` on the admin port); the drain reports through it too. */
  metrics: Metrics;
  logger: Logger;
  stop(): Promise<void>;
}

/**
 * The composition root: config → cluster → bus → services → servers.
 * Everything below receives its dependencies from here; nothing reaches for globals.
 */
export async function startNode(config: Config, logger?: Logger): Promise<RunningNode> {
  const log = logger ?? pino({ level: config.LOG_LEVEL, base: { pid: process.pid } });
  const nodeId = config.NODE_ID ? `${config.NODE_ID}-${randomUUID().slice(0, 8)}` : randomUUID();
  const nodeLog = log.child({ nodeId });
  const metrics = new Metrics();

  const clustered = config.CLUSTER_MODE === 'hazelcast';
  const cluster: ClusterManager = clustered
    ? new HazelcastClusterManager({
        members: config.HAZELCAST_MEMBERS ?? [],
        clusterName: config.HAZELCAST_CLUSTER_NAME,
        leaseMs: config.CLUSTER_LEASE_MS,
        connectTimeoutMs: config.HAZELCAST_CONNECT_TIMEOUT_MS,
        logger: nodeLog.child({ component: 'cluster' }),
      })
    : new StandaloneClusterManager();
  const transport = clustered
    ? new TcpTransport({
        nodeId,
        host: config.CLUSTER_HOST,
        port: config.CLUSTER_PORT,
        ...(config.CLUSTER_PUBLIC_HOST ? { publicHost: config.CLUSTER_PUBLIC_HOST } : {}),
        maxFrameBytes: config.BUS_MAX_BODY_BYTES + 1024 * 1024,
        logger: nodeLog.child({ component: 'bus-transport' }),
      })
    : undefined;
  const bus = new ClusteredEventBus({
    cluster,
    ...(transport ? { transport } : {}),
    nodeId,
    defaultTimeoutMs: config.BUS_REQUEST_TIMEOUT_MS,
    maxBodyBytes: config.BUS_MAX_BODY_BYTES,
    logger: nodeLog.child({ component: 'eventbus' }),
    observer: metrics.bus,
  });
  const dataDir = resolve(config.DATA_DIR);
  const layered = layerNodeStore(
    metrics.observeDatabase(
      createMessageStore(
        config.STORE === 'mongodb'
          ? {
              kind: 'mongodb',
              url: config.MONGO_URL!,
              dbName: config.MONGO_DB,
              batching: config.STORE_BATCHING,
              maxInsertsInFlight: config.MONGO_INSERTS_IN_FLIGHT,
              slowCommandMs: config.MONGO_SLOW_MS,
              logger: nodeLog.child({ component: 'store' }),
            }
          : { kind: 'embedded', dir: resolve(dataDir, 'messages') },
      ),
    ),
    {
      tailMessagesPerRoom: config.STORE_TAIL_MESSAGES,
      tailBytesPerNode: config.STORE_TAIL_MB * 1024 * 1024,
      maxInFlight: config.STORE_MAX_IN_FLIGHT,
      slowMs: config.STORE_SLOW_MS,
    },
  );
  const store = metrics.observeStore(layered.store);
  const files = new FileStore(resolve(config.FILES_DIR ?? resolve(dataDir, 'files')), config.FILE_MAX_BYTES);
  const chat = new ChatService({
    bus,
    cluster,
    store,
    files,
    limits: {
      maxTextLength: config.CHAT_MAX_TEXT,
      joinMaxMessages: config.CHAT_JOIN_MAX,
      joinLatest: config.CHAT_JOIN_LATEST,
    },
    logger: nodeLog.child({ component: 'chat' }),
    observer: metrics.chat,
    // Room ownership moved: another node may have written rooms whose tails this node holds.
    onOwnersChanged: (ownedThroughout) => layered.tail.forgetRooms((room) => !ownedThroughout(room)),
    tails: layered.tail,
    roomTopQuietMs: config.ROOM_TOP_QUIET_MS,
    consumersOf: (address) => bus.localHandlerCount(address),
  });
  bus.tapPublishes(Chat.room(''), (m) => chat.positions.delivered(m));
  layered.tail.setOwnership((room) => chat.ownsRoom(room));
  /** False from the moment the node starts stopping (PreStop or SIGTERM): not ready, no new sockets. */
  let accepting = true;
  const stopAccepting = (): void => {
    if (accepting) nodeLog.info({}, 'not ready: refusing new connections');
    accepting = false;
  };
  const readiness = new Readiness();
  readiness.add('cluster', () => cluster.isConnected());
  // The database is shared by every node: if its trouble made nodes unready, all of them would
  // leave the Service together and even live delivery and joins from the tails would stop. Slow or
  // down, the node keeps serving (sends refused fast with a retriable 503) and says so.
  readiness.addDegraded('store', () => layered.shed.isDegraded());
  readiness.add('accepting', () => accepting);
  const http = createHttpServer({ logger: nodeLog, readiness, nodeId });
  const verifier = config.AUTH_TOKEN_SECRET ? new TokenVerifier(config.AUTH_TOKEN_SECRET) : undefined;
  const uploads = new UploadLimits({
    uploadsPerMinute: config.FILE_UPLOADS_PER_MINUTE,
    bytesPerHour: config.FILE_UPLOAD_BYTES_PER_HOUR,
  });
  await http.register(filesRoutes, {
    files,
    verifier,
    links: config.AUTH_TOKEN_SECRET
      ? new FileLinks(config.AUTH_TOKEN_SECRET, config.FILE_LINK_TTL_MS)
      : undefined,
    uploads,
    allowedOrigins: config.ALLOWED_ORIGINS,
  });
  await http.register(frontRoutes, { dir: resolve(config.FRONT_DIR) });
  const sessions = new Set<BridgeSession>();
  const storeBack = new StoreRecoveryNotice({
    degraded: () => layered.shed.isDegraded(),
    sessions: () => sessions,
    retriesPerSec: config.STORE_RETRY_PER_SEC,
    log: nodeLog.child({ component: 'store' }),
  });
  metrics.watch({
    clusterConnected: () => cluster.isConnected(),
    clusterNodes: () => cluster.nodes().length,
    storeConnected: () => store.isHealthy(),
    storeLayers: () => ({ ...layered.shed.stats(), tail: layered.tail.stats() }),
    wsConnections: () => sessions.size,
  });
  const admin = await createAdminServer({
    logger: nodeLog.child({ listener: 'admin' }),
    readiness,
    nodeId,
    metrics,
    stopAccepting,
    prestopWaitMs: config.PRESTOP_WAIT_MS,
  });
  const bridge: BridgeEndpointOptions = {
    bus,
    options: bridgeOptions({
      inbound: [...CHAT_BRIDGE_PERMISSIONS.inbound, ...(config.BRIDGE_PERMISSIONS?.inbound ?? [])],
      outbound: [...CHAT_BRIDGE_PERMISSIONS.outbound, ...(config.BRIDGE_PERMISSIONS?.outbound ?? [])],
      hook: chatBridgePolicy(bus),
      hookEvents: CHAT_POLICY_EVENTS,
      // Every node runs the chat service, which sends each request on to its room's owner itself.
      preferLocal: CHAT_REQUEST_ADDRESSES,
      maxHandlers: config.BRIDGE_MAX_HANDLERS,
      replyTimeoutMs: config.BRIDGE_REPLY_TIMEOUT_MS,
      idleTimeoutMs: config.BRIDGE_IDLE_TIMEOUT_MS,
      maxFrameBytes: config.BRIDGE_MAX_FRAME_BYTES,
      ratePerSec: config.BRIDGE_RATE_PER_SEC,
      maxBufferedBytes: config.BRIDGE_MAX_BUFFERED_BYTES,
      maxInflight: config.BRIDGE_MAX_INFLIGHT,
      maxInflightPerAddress: config.BRIDGE_MAX_INFLIGHT_PER_ADDRESS,
      maxConnectionsPerAddress: config.BRIDGE_MAX_CONNECTIONS_PER_ADDRESS,
      observer: metrics.bridge,
      logger: nodeLog.child({ component: 'bridge' }),
    }),
    ...(verifier ? { verifier } : {}),
    allowedOrigins: config.ALLOWED_ORIGINS,
    hardMaxFrameBytes: Math.max(1024 * 1024, config.BRIDGE_MAX_FRAME_BYTES * 2),
    sessions,
    accepting: () => accepting,
  };
  await http.register(wsBridgeEndpoint, bridge);
  await http.register(sockJsBridgeEndpoint, bridge);

  const cleanup: (() => Promise<unknown>)[] = [];
  let address: string;
  let adminAddress: string;
  let grpc: GrpcBridgeServer;
  try {
    await bus.start();
    cleanup.push(() => bus.close());
    await store.open();
    storeBack.start();
    cleanup.push(async () => storeBack.stop());
    cleanup.push(() => store.close());
    await files.init();
    await chat.start();
    address = await http.listen({ port: config.PORT, host: config.HOST });
    cleanup.push(() => http.close());
    adminAddress = await admin.listen({ port: config.ADMIN_PORT, host: config.ADMIN_HOST ?? config.HOST });
    cleanup.push(() => admin.close());
    grpc = await startGrpcServer({
      bus,
      files,
      uploads,
      options: bridge.options,
      ...(verifier ? { verifier } : {}),
      host: config.HOST,
      port: config.GRPC_PORT,
      ready: () => readiness.report().ready,
      maxStreamQueue: config.GRPC_STREAM_MAX_QUEUE,
      maxStreamsPerConnection: config.GRPC_MAX_STREAMS_PER_CONNECTION,
      maxMessageBytes: config.GRPC_MAX_MESSAGE_BYTES,
      keepaliveTimeMs: config.GRPC_KEEPALIVE_TIME_MS,
      keepaliveTimeoutMs: config.GRPC_KEEPALIVE_TIMEOUT_MS,
      maxConnectionAgeMs: config.GRPC_MAX_CONNECTION_AGE_MS,
      maxConnectionAgeGraceMs: config.GRPC_MAX_CONNECTION_AGE_GRACE_MS,
      logger: nodeLog.child({ component: 'grpc' }),
    });
  } catch (err) {
    for (const undo of cleanup.reverse())
      await undo().catch((e: unknown) =>
        nodeLog.warn({ err: String(e) }, 'cleanup after a failed start failed'),
      );
    throw err;
  }
  const url = localUrl(address);
  const adminUrl = localUrl(adminAddress);
  const where = (host: string, port: string | number): string =>
    isWildcard(host) ? `${host}:${port} (every interface)` : `${host}:${port}`;
  // The URL is where this machine reaches the node; the bind address says who else can.
  nodeLog.info(
    { url, host: config.HOST, cluster: cluster.kind, store: store.kind },
    `switchboard node listening on ${url}${isWildcard(config.HOST) ? ` (bound to ${config.HOST}: every interface)` : ''}`,
  );
  nodeLog.info(
    { adminUrl },
    `switchboard admin (/prestop, /metrics) listening on ${where(config.ADMIN_HOST ?? config.HOST, new URL(adminUrl).port)}`,
  );
  nodeLog.info({ grpcPort: grpc.port }, `switchboard gRPC listening on ${where(config.HOST, grpc.port)}`);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= drain({
      stopAccepting,
      sessions: () => [...sessions],
      stopGrpc: async () => {
        const streams = await grpc.stop(config.DRAIN_GRPC_GRACE_MS);
        metrics.reconnectRequested('grpc', streams);
      },
      stopServices: () => chat.stop(),
      // Bounded: a stalled database must not hold the exit; what it did not confirm was not acked,
      // and clients resend it (same clientMsgId) to another node.
      flushStore: () =>
        Promise.race([
          store.flush(),
          new Promise<void>((resolve) => setTimeout(resolve, DRAIN_FLUSH_MAX_MS).unref()),
        ]),
      leaveCluster: () => bus.close(),
      closeServers: async () => {
        storeBack.stop();
        await http.close();
        await admin.close();
        await store.close();
      },
      timing: {
        windowMs: config.DRAIN_WINDOW_MS,
        reconnectsPerSec: DRAIN_RECONNECTS_PER_SEC,
        sessionCloseGraceMs: 2_000,
      },
      observer: metrics,
      log: nodeLog.child({ component: 'lifecycle' }),
    }).then(() => undefined));

  return {
    config,
    nodeId,
    bus,
    cluster,
    store,
    chat,
    http,
    url,
    adminUrl,
    admin,
    grpc,
    grpcPort: grpc.port,
    metrics,
    logger: nodeLog,
    stop,
  };
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

/** An address Fastify reports, as a URL this machine can use (a wildcard bind is reachable on loopback). */
function localUrl(address: string): string {
  return address.replace('[::]', '127.0.0.1').replace('0.0.0.0', '127.0.0.1');
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`switchboard: ${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
  const node = await startNode(config);
  exitOnSignals({ stop: node.stop, deadlineMs: config.SHUTDOWN_TIMEOUT_MS, log: node.logger });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(
      `switchboard: start-up failed: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    process.exit(1);
  });
}
