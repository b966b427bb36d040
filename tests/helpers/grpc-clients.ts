/** @grpc/grpc-js clients for the gRPC bridge, loaded from the same protos as the server. */
import * as grpc from '@grpc/grpc-js';
import { loadPackageDefinition } from '../../backend/src/bridge/grpc/proto.js';

const pkg = grpc.loadPackageDefinition(loadPackageDefinition()) as unknown as {
  vertx: { event: { v1alpha: { EventBusBridge: grpc.ServiceClientConstructor } } };
  switchboard: { chat: { v1: { Chat: grpc.ServiceClientConstructor } } };
  grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
};

type Method =
  | 'ping'
  | 'publish'
  | 'send'
  | 'request'
  | 'subscribe'
  | 'unsubscribe'
  | 'join'
  | 'history'
  | 'upload'
  | 'download'
  | 'check'
  | 'watch';
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Client = grpc.Client & Record<Method, (...args: any[]) => any>;

export function eventBusClient(target: string, options: grpc.ChannelOptions = {}): Client {
  return new pkg.vertx.event.v1alpha.EventBusBridge(
    target,
    grpc.credentials.createInsecure(),
    options,
  ) as unknown as Client;
}

export function chatClient(target: string, options: grpc.ChannelOptions = {}): Client {
  return new pkg.switchboard.chat.v1.Chat(
    target,
    grpc.credentials.createInsecure(),
    options,
  ) as unknown as Client;
}

export function healthClient(target: string): Client {
  return new pkg.grpc.health.v1.Health(target, grpc.credentials.createInsecure()) as unknown as Client;
}

export interface UnaryResult<T> {
  error?: grpc.ServiceError;
  value?: T;
  headers: grpc.Metadata | undefined;
  trailers: grpc.Metadata | undefined;
}

/** Calls a unary (or client-streaming, with `write`) method; never rejects, bounded by a deadline. */
export function unaryCall<T>(
  client: Client,
  method: Method,
  request: unknown,
  metadata: grpc.Metadata = new grpc.Metadata(),
  deadlineMs = 20_000,
): Promise<UnaryResult<T>> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | undefined;
    let trailers: grpc.Metadata | undefined;
    let outcome: { error?: grpc.ServiceError; value?: T } | undefined;
    let gotStatus = false;
    const finish = (): void => {
      if (outcome && gotStatus) resolve({ ...outcome, headers, trailers });
    };
    const fn = client[method].bind(client) as (
      req: unknown,
      md: grpc.Metadata,
      opts: grpc.CallOptions,
      cb: (err: grpc.ServiceError | null, value?: T) => void,
    ) => grpc.ClientUnaryCall;
    const call = fn(request, metadata, { deadline: Date.now() + deadlineMs }, (err, value) => {
      outcome = err ? { error: err } : { value: value as T };
      finish();
    });
    call.on('metadata', (md: grpc.Metadata) => (headers = md));
    call.on('status', (s: grpc.StatusObject) => {
      trailers = s.metadata;
      gotStatus = true;
      finish();
    });
  });
}

export function bearer(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}
