import type { proto } from '@switchboard/protocol';
import { GrpcError } from './status.js';
import { status } from '@grpc/grpc-js';

/** Deepest nesting of a google.protobuf.Value body we translate (deeper is bad input). */
export const MAX_JSON_DEPTH = 64;

/** A JsonValue from a client as a JSON value for the bus; bad input is INVALID_ARGUMENT. */
export function fromJsonValue(value: proto.JsonValue | undefined, field = 'body'): unknown {
  if (!value || value.value === undefined) return null;
  switch (value.value) {
    case 'proto':
      return value.proto ? fromProto(value.proto, field, 0) : null;
    case 'binary':
      return parseJson(value.binary ? utf8(value.binary) : '', `${field}.binary`);
    case 'text':
      return parseJson(value.text ?? '', `${field}.text`);
  }
}

/**
 * Bytes as text. proto-loader hands us Buffers, typed Uint8Array by the generated types (which
 * the browser client shares): a view, not a copy, decoded as before.
 */
function utf8(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}

function parseJson(text: string, field: string): unknown {
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new GrpcError(status.INVALID_ARGUMENT, `${field}: not valid JSON (${(err as Error).message})`);
  }
}

function fromProto(v: proto.Value, field: string, depth: number): unknown {
  if (depth > MAX_JSON_DEPTH)
    throw new GrpcError(status.INVALID_ARGUMENT, `${field}: nested deeper than ${MAX_JSON_DEPTH} levels`);
  switch (v.kind) {
    case undefined:
    case 'nullValue':
      return null;
    case 'numberValue': {
      const n = v.numberValue ?? 0;
      if (!Number.isFinite(n))
        throw new GrpcError(status.INVALID_ARGUMENT, `${field}: ${n} is not a JSON number`);
      return n;
    }
    case 'stringValue':
      return v.stringValue ?? '';
    case 'boolValue':
      return v.boolValue ?? false;
    case 'listValue':
      return (v.listValue?.values ?? []).map((x, i) => fromProto(x, `${field}[${i}]`, depth + 1));
    case 'structValue': {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v.structValue?.fields ?? {}))
        out[k] = fromProto(x, `${field}.${k}`, depth + 1);
      return out;
    }
  }
}

function toProto(value: unknown, depth: number): proto.Value {
  if (value === null || value === undefined || depth > MAX_JSON_DEPTH)
    return { kind: 'nullValue', nullValue: 'NULL_VALUE' };
  if (typeof value === 'number') return { kind: 'numberValue', numberValue: value };
  if (typeof value === 'string') return { kind: 'stringValue', stringValue: value };
  if (typeof value === 'boolean') return { kind: 'boolValue', boolValue: value };
  if (Buffer.isBuffer(value)) return { kind: 'stringValue', stringValue: value.toString('base64') };
  if (Array.isArray(value))
    return { kind: 'listValue', listValue: { values: value.map((x) => toProto(x, depth + 1)) } };
  if (typeof value === 'object') {
    const fields: Record<string, proto.Value> = {};
    for (const [k, x] of Object.entries(value as Record<string, unknown>))
      if (x !== undefined) fields[k] = toProto(x, depth + 1);
    return { kind: 'structValue', structValue: { fields } };
  }
  return { kind: 'nullValue', nullValue: 'NULL_VALUE' };
}

/** Accepts the enum as its name or number; anything else is INVALID_ARGUMENT. */
export function parseFormat(
  format: proto.JsonValueFormat | number | undefined,
  field: string,
): proto.JsonValueFormat {
  if (format === undefined || format === 'proto' || format === 0) return 'proto';
  if (format === 'binary' || format === 1) return 'binary';
  if (format === 'text' || format === 2) return 'text';
  throw new GrpcError(status.INVALID_ARGUMENT, `${field}: unknown JsonValueFormat ${String(format)}`);
}

/** A bus body as a JsonValue in the format the client asked for (raw bytes stay bytes in binary). */
export function toJsonValue(body: unknown, format: proto.JsonValueFormat): proto.JsonValue {
  switch (format) {
    case 'proto':
      return { proto: toProto(body, 0) };
    case 'binary':
      return { binary: Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body ?? null), 'utf8') };
    case 'text':
      return {
        text: Buffer.isBuffer(body) ? JSON.stringify(body.toString('base64')) : JSON.stringify(body ?? null),
      };
  }
}
