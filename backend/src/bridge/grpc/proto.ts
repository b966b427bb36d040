import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { proto } from '@switchboard/protocol';
import descriptor from 'protobufjs/ext/descriptor/index.js';

/** `proto/` at the repository root (same depth from `src/` and `dist/`). */
export const PROTO_ROOT = fileURLToPath(new URL('../../../../proto/', import.meta.url));

export const PROTO_FILES = [
  'vertx/event/v1alpha/eventbus.proto',
  'switchboard/chat/v1/chat.proto',
  'grpc/health/v1/health.proto',
];

/**
 * How messages look in JavaScript: the options the generated types (`proto.*` of
 * @switchboard/protocol) describe; 64-bit integers as numbers, as seqs and sizes stay below 2^53.
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  ...proto.PROTO_LOADER_OPTIONS,
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

// --- service definitions ----------------------------------------------------------------------

/** A method of a generated method table (`proto.ChatMethods`…) as grpc-js calls its handler. */
type HandlerOf<M extends proto.MethodShape> = M['requestStream'] extends true
  ? M['responseStream'] extends true
    ? grpc.handleBidiStreamingCall<M['request'], M['response']>
    : grpc.handleClientStreamingCall<M['request'], M['response']>
  : M['responseStream'] extends true
    ? grpc.handleServerStreamingCall<M['request'], M['response']>
    : grpc.handleUnaryCall<M['request'], M['response']>;

/** A service's implementation, typed by its generated method table. */
export type HandlersOf<S extends Record<keyof S, proto.MethodShape>> = { [K in keyof S]: HandlerOf<S[K]> };

// Interfaces, not intersections: their members take precedence over grpc-js's untyped index
// signature (an intersection would give each handler `& HandleCall<any, any>`).
export interface EventBusBridgeHandlers
  extends HandlersOf<proto.EventBusBridgeMethods>, grpc.UntypedServiceImplementation {}
export interface ChatHandlers extends HandlersOf<proto.ChatMethods>, grpc.UntypedServiceImplementation {}
export interface HealthHandlers extends HandlersOf<proto.HealthMethods>, grpc.UntypedServiceImplementation {}

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
