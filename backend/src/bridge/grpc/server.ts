import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import type { TokenVerifier } from '../../auth/tokens.js';
import type { EventBus } from '../../eventbus/types.js';
import type { UploadLimits } from '../../files/access.js';
import type { FileStore } from '../../files/file-store.js';
import type { BridgeOptions } from '../core/options.js';
import { GrpcAdmission } from './admission.js';
import { ChatGrpcService } from './chat-service.js';
import type { GrpcBridgeContext } from './context.js';
import { EventBusBridgeService } from './eventbus-service.js';
import { HealthService } from './health.js';
import { loadServices, withResolvableImports } from './proto.js';

export interface GrpcServerOptions {
  bus: EventBus;
  files: FileStore;
  uploads?: UploadLimits;
  options: BridgeOptions;
  verifier?: TokenVerifier;
  host: string;
  /** 0: an ephemeral port. */
  port: number;
  /** True while the node takes traffic (health SERVING). */
  ready: () => boolean;
  /** Most messages a Subscribe/Join stream queues for a client that does not read. */
  maxStreamQueue: number;
  /** Server streams open at once per connection. */
  maxStreamsPerConnection: number;
  maxMessageBytes: number;
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
  /** 0: connections never age out. */
  maxConnectionAgeMs: number;
  maxConnectionAgeGraceMs: number;
  logger?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

export interface GrpcBridgeServer {
  readonly port: number;
  readonly eventBus: EventBusBridgeService;
  /**
   * Health NOT_SERVING, streams end with UNAVAILABLE + `reconnect`, GOAWAY, then close (bounded).
   * Resolves with the number of streams that were asked to reconnect.
   */
  stop(graceMs?: number): Promise<number>;
}

export const SERVICE_NAMES = [
  'vertx.event.v1alpha.EventBusBridge',
  'switchboard.chat.v1.Chat',
  'grpc.health.v1.Health',
];

/** Starts the gRPC bridge: EventBusBridge, Chat, health and reflection on one server. */
export async function startGrpcServer(o: GrpcServerOptions): Promise<GrpcBridgeServer> {
  const loaded = loadServices();
  const ctx: GrpcBridgeContext = {
    nodeId: o.bus.nodeId,
    options: o.options,
    verifier: o.verifier,
    maxStreamQueue: o.maxStreamQueue,
    admission: new GrpcAdmission({
      ratePerSec: o.options.ratePerSec,
      rateBurst: o.options.rateBurst,
      maxInflight: o.options.maxInflight,
      maxStreams: o.maxStreamsPerConnection,
      addressLimits: o.options.addressLimits,
    }),
  };
  let stopping = false;
  const eventBus = new EventBusBridgeService(o.bus, ctx);
  const chat = new ChatGrpcService(o.bus, o.files, ctx, o.uploads);
  const health = new HealthService(SERVICE_NAMES, () => !stopping && o.ready());
  const channelOptions: grpc.ServerOptions = {
    'grpc.max_receive_message_length': o.maxMessageBytes,
    'grpc.max_send_message_length': o.maxMessageBytes,
    'grpc.keepalive_time_ms': o.keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': o.keepaliveTimeoutMs,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    ...(o.maxConnectionAgeMs > 0
      ? {
          'grpc.max_connection_age_ms': o.maxConnectionAgeMs,
          'grpc.max_connection_age_grace_ms': o.maxConnectionAgeGraceMs,
        }
      : {}),
  };
  const server = new grpc.Server(channelOptions);
  server.addService(loaded.eventBus, eventBus.handlers());
  server.addService(loaded.chat, chat.handlers());
  server.addService(loaded.health, health.handlers());
  new ReflectionService(withResolvableImports(loaded.definition)).addToServer(server);

  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${o.port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(new Error(`gRPC: cannot listen on ${host}:${o.port}: ${err.message}`)) : resolve(p),
    ),
  );

  let stopped: Promise<number> | undefined;
  const stop = (graceMs = 5_000): Promise<number> =>
    (stopped ??= (async () => {
      stopping = true;
      ctx.admission.close();
      health.endAll();
      const streams = eventBus.closeAll('node draining') + chat.closeAll('node draining');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          o.logger?.warn({ graceMs }, 'gRPC calls still open after the grace period: closing them');
          server.forceShutdown();
          resolve();
        }, graceMs);
        timer.unref();
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      return streams;
    })());

  return { port, eventBus, stop };
}
