import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import descriptor from 'protobufjs/ext/descriptor/index.js';

/** `proto/` at the repository root (same depth from `src/` and `dist/`). */
export const PROTO_ROOT = fileURLToPath(new URL('../../../../proto/', import.meta.url));

export const PROTO_FILES = [
  'vertx/event/v1alpha/eventbus.proto',
  'switchboard/chat/v1/chat.proto',
  'grpc/health/v1/health.proto',
];

/**
 * How messages look in JavaScript: camelCase fields, 64-bit integers as numbers (seqs and sizes
 * stay below 2^53), enums as their names, `oneof` groups named by a virtual field, unset fields
 * undefined. The interfaces below are written against exactly these options.
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: false,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

export function loadPackageDefinition(): protoLoader.PackageDefinition {
  return protoLoader.loadSync(PROTO_FILES, LOADER_OPTIONS);
}

interface FileDescriptor {
  name?: string;
  package?: string;
  dependency?: string[];
  messageType?: MessageDescriptor[];
  service?: { method?: { inputType?: string; outputType?: string }[] }[];
}
interface MessageDescriptor {
  name?: string;
  field?: { name?: string; typeName?: string }[];
  nestedType?: MessageDescriptor[];
  options?: { mapEntry?: boolean };
}
interface DescriptorCodec {
  decode(bytes: Uint8Array): FileDescriptor;
  encode(message: FileDescriptor): { finish(): Uint8Array };
  fromObject(object: FileDescriptor): FileDescriptor;
}

/**
 * proto-loader (protobufjs) synthesizes one file descriptor per package and lists no imports, so
 * reflection clients (grpcurl) cannot resolve `google.protobuf.*` types from our files. This adds
 * the missing dependencies so that reflection serves a complete, resolvable set
 * (grpc/grpc-node#2958).
 */
export function withResolvableImports(def: protoLoader.PackageDefinition): protoLoader.PackageDefinition {
  const codec = (descriptor as unknown as { FileDescriptorProto: DescriptorCodec }).FileDescriptorProto;
  // every file of the definition, by package (protobufjs names files after their package)
  const packages = new Map<string, string>();
  const collect = (list: Buffer[] | undefined): void => {
    for (const b of list ?? []) {
      const f = codec.decode(b);
      if (f.package && f.name) packages.set(f.package, f.name);
    }
  };
  for (const value of Object.values(def)) {
    if ('fileDescriptorProtos' in value) collect(value.fileDescriptorProtos as Buffer[]);
  }
  const fileOf = (typeName: string): string | undefined => {
    let best: string | undefined;
    const name = typeName.replace(/^\./, '');
    for (const pkg of packages.keys())
      if (name.startsWith(`${pkg}.`) && (best === undefined || pkg.length > best.length)) best = pkg;
    return best === undefined ? undefined : packages.get(best);
  };
  const patched = new Map<string, Buffer>();
  const patch = (bytes: Buffer): Buffer => {
    const key = bytes.toString('base64');
    const hit = patched.get(key);
    if (hit) return hit;
    const file = codec.decode(bytes);
    const deps = new Set(file.dependency ?? []);
    const refer = (typeName: string | undefined): void => {
      const dep = typeName ? fileOf(typeName) : undefined;
      if (dep && dep !== file.name) deps.add(dep);
    };
    // protobufjs names map entries after the field ("Headers"); protoc's rule is "HeadersEntry"
    const visit = (m: MessageDescriptor): void => {
      for (const nested of m.nestedType ?? []) {
        if (!nested.options?.mapEntry) continue;
        const field = (m.field ?? []).find((f) => f.typeName === nested.name);
        if (!field?.name) continue;
        const camel = field.name.replace(/(?:^|_)([a-z])/g, (_x, c: string) => c.toUpperCase());
        nested.name = `${camel.charAt(0).toUpperCase()}${camel.slice(1)}Entry`;
        field.typeName = nested.name;
      }
      for (const f of m.field ?? []) refer(f.typeName);
      for (const nested of m.nestedType ?? []) visit(nested);
    };
    for (const m of file.messageType ?? []) visit(m);
    for (const svc of file.service ?? [])
      for (const m of svc.method ?? []) {
        refer(m.inputType);
        refer(m.outputType);
      }
    const out = Buffer.from(codec.encode(codec.fromObject({ ...file, dependency: [...deps] })).finish());
    patched.set(key, out);
    return out;
  };
  const copy: protoLoader.PackageDefinition = {};
  for (const [name, value] of Object.entries(def)) {
    if ('fileDescriptorProtos' in value && Array.isArray(value.fileDescriptorProtos)) {
      copy[name] = { ...value, fileDescriptorProtos: value.fileDescriptorProtos.map(patch) } as typeof value;
    } else if (typeof value === 'object') {
      const methods: Record<string, unknown> = {};
      for (const [m, d] of Object.entries(value as Record<string, unknown>)) {
        const md = d as {
          requestType?: { fileDescriptorProtos?: Buffer[] };
          responseType?: { fileDescriptorProtos?: Buffer[] };
        };
        methods[m] = {
          ...md,
          ...(md.requestType?.fileDescriptorProtos
            ? {
                requestType: {
                  ...md.requestType,
                  fileDescriptorProtos: md.requestType.fileDescriptorProtos.map(patch),
                },
              }
            : {}),
          ...(md.responseType?.fileDescriptorProtos
            ? {
                responseType: {
                  ...md.responseType,
                  fileDescriptorProtos: md.responseType.fileDescriptorProtos.map(patch),
                },
              }
            : {}),
        };
      }
      copy[name] = methods as unknown as protoLoader.ServiceDefinition;
    }
  }
  return copy;
}

// --- google.protobuf ------------------------------------------------------------------------

export type Empty = Record<string, never>;

export interface Duration {
  seconds?: number;
  nanos?: number;
}

export interface ProtoStruct {
  fields?: Record<string, ProtoValue>;
}

export interface ProtoListValue {
  values?: ProtoValue[];
}

/** google.protobuf.Value; `kind` names the field that is set. */
export interface ProtoValue {
  kind?: 'nullValue' | 'numberValue' | 'stringValue' | 'boolValue' | 'structValue' | 'listValue';
  nullValue?: 'NULL_VALUE' | number;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: ProtoStruct;
  listValue?: ProtoListValue;
}

// --- vertx.event.v1alpha ----------------------------------------------------------------------

export type JsonValueFormat = 'proto' | 'binary' | 'text';

export interface JsonValue {
  value?: 'proto' | 'binary' | 'text';
  proto?: ProtoValue;
  binary?: Buffer;
  text?: string;
}

export interface PublishOp {
  address?: string;
  headers?: Record<string, string>;
  body?: JsonValue;
}

export interface SendOp extends PublishOp {
  timeout?: Duration;
}

export interface RequestOp extends PublishOp {
  replyBodyFormat?: JsonValueFormat | number;
  timeout?: Duration;
}

export interface SubscribeOp {
  address?: string;
  headers?: Record<string, string>;
  messageBodyFormat?: JsonValueFormat | number;
}

export interface UnsubscribeOp {
  consumerId?: string;
}

export interface EventBusMessage {
  address: string;
  consumerId?: string;
  replyAddress?: string;
  headers: Record<string, string>;
  body: JsonValue;
}

// --- switchboard.chat.v1 ----------------------------------------------------------------------

export interface FileRefMsg {
  id?: string;
  name?: string;
  size?: number;
  contentType?: string;
}

export interface ChatMessageMsg {
  room: string;
  seq: number;
  id: string;
  clientMsgId: string;
  user: string;
  text?: string;
  file?: FileRefMsg;
  ts: number;
}

export interface JoinRequest {
  room?: string;
  user?: string;
  since?: number;
  resumeToken?: string;
}

export interface ChatEvent {
  seq: number;
  joined?: { room: string; lastSeq: number; node: string; resumeToken?: string };
  message?: ChatMessageMsg;
  presence?: { room: string; users: string[] };
}

export interface SendRequest {
  room?: string;
  user?: string;
  clientMsgId?: string;
  text?: string;
  file?: FileRefMsg;
}

export interface SendAckMsg {
  seq: number;
  id: string;
  ts: number;
}

export interface HistoryRequest {
  room?: string;
  afterSeq?: number;
  beforeSeq?: number;
  limit?: number;
}

export interface HistoryResponse {
  messages: ChatMessageMsg[];
}

export interface UploadChunk {
  chunk?: 'info' | 'data';
  info?: { name?: string; contentType?: string };
  data?: Buffer;
}

export interface DownloadRequest {
  id?: string;
}

export interface DownloadChunk {
  info?: FileRefMsg;
  data?: Buffer;
}

// --- grpc.health.v1 ---------------------------------------------------------------------------

export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

export interface HealthCheckRequest {
  service?: string;
}

export interface HealthCheckResponse {
  status: ServingStatus;
}

// --- service definitions ----------------------------------------------------------------------

export interface EventBusBridgeHandlers extends grpc.UntypedServiceImplementation {
  publish: grpc.handleUnaryCall<PublishOp, Empty>;
  send: grpc.handleUnaryCall<SendOp, Empty>;
  request: grpc.handleUnaryCall<RequestOp, EventBusMessage>;
  subscribe: grpc.handleServerStreamingCall<SubscribeOp, EventBusMessage>;
  unsubscribe: grpc.handleUnaryCall<UnsubscribeOp, Empty>;
  ping: grpc.handleUnaryCall<Empty, Empty>;
}

export interface ChatHandlers extends grpc.UntypedServiceImplementation {
  join: grpc.handleServerStreamingCall<JoinRequest, ChatEvent>;
  send: grpc.handleUnaryCall<SendRequest, SendAckMsg>;
  history: grpc.handleUnaryCall<HistoryRequest, HistoryResponse>;
  upload: grpc.handleClientStreamingCall<UploadChunk, FileRefMsg>;
  download: grpc.handleServerStreamingCall<DownloadRequest, DownloadChunk>;
}

export interface HealthHandlers extends grpc.UntypedServiceImplementation {
  check: grpc.handleUnaryCall<HealthCheckRequest, HealthCheckResponse>;
  watch: grpc.handleServerStreamingCall<HealthCheckRequest, HealthCheckResponse>;
}

export interface LoadedServices {
  definition: protoLoader.PackageDefinition;
  eventBus: grpc.ServiceDefinition;
  chat: grpc.ServiceDefinition;
  health: grpc.ServiceDefinition;
}

function service(definition: protoLoader.PackageDefinition, name: string): grpc.ServiceDefinition {
  const def = definition[name];
  if (!def || 'format' in def) throw new Error(`proto: no service ${name} in ${PROTO_ROOT}`);
  return def as grpc.ServiceDefinition;
}

export function loadServices(): LoadedServices {
  const definition = loadPackageDefinition();
  return {
    definition,
    eventBus: service(definition, 'vertx.event.v1alpha.EventBusBridge'),
    chat: service(definition, 'switchboard.chat.v1.Chat'),
    health: service(definition, 'grpc.health.v1.Health'),
  };
}
