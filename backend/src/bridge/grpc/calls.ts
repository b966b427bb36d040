import {
  Metadata,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerReadableStream,
  type ServerWritableStream,
  status,
} from '@grpc/grpc-js';
import { ChatHeader } from '@switchboard/protocol';
import type { GrpcBridgeContext } from './context.js';
import { toGrpcError } from './status.js';

export function serverMetadata(ctx: GrpcBridgeContext): Metadata {
  const md = new Metadata();
  // Names the node that served the call (load-balancing checks, debugging).
  md.set(ChatHeader.node, ctx.nodeId);
  return md;
}

/**
 * A promise-returning handler as a grpc-js handler that answers once through a callback (unary
 * or client-streaming): errors become statuses.
 */
function answered<Call extends { sendMetadata(md: Metadata): void }, Res>(
  ctx: GrpcBridgeContext,
  fn: (call: Call) => Promise<Res>,
  recipientStatus?: (code: number) => status,
): (call: Call, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    call.sendMetadata(serverMetadata(ctx));
    const refuse = (err: unknown): void => {
      const e = toGrpcError(err, recipientStatus);
      callback({ code: e.code, details: e.details, metadata: e.metadata });
    };
    let done: () => void;
    try {
      done = ctx.admission.call((call as unknown as { getPeer(): string }).getPeer());
    } catch (err) {
      return refuse(err);
    }
    fn(call).then(
      (res) => {
        done();
        callback(null, res);
      },
      (err: unknown) => {
        done();
        refuse(err);
      },
    );
  };
}

export function unary<Req, Res>(
  ctx: GrpcBridgeContext,
  fn: (call: ServerUnaryCall<Req, Res>) => Promise<Res>,
  recipientStatus?: (code: number) => status,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return answered(ctx, fn, recipientStatus);
}

export function clientStream<Req, Res>(
  ctx: GrpcBridgeContext,
  fn: (call: ServerReadableStream<Req, Res>) => Promise<Res>,
  recipientStatus?: (code: number) => status,
): (call: ServerReadableStream<Req, Res>, callback: sendUnaryData<Res>) => void {
  return answered(ctx, fn, recipientStatus);
}

/**
 * A promise-returning server-streaming handler as a grpc-js handler. The handler ends its stream
 * itself, failures included; should it still reject, the failure is logged and the stream ends
 * with its status, rather than an unhandled rejection stopping the node.
 */
export function serverStream<Req, Res>(
  ctx: GrpcBridgeContext,
  fn: (call: ServerWritableStream<Req, Res>) => Promise<void>,
): (call: ServerWritableStream<Req, Res>) => void {
  return (call) => {
    void fn(call).catch((err: unknown) => {
      ctx.options.log.warn({ err: String(err) }, 'gRPC: a stream handler failed');
      const e = toGrpcError(err);
      call.emit('error', { code: e.code, details: e.details, metadata: e.metadata });
    });
  };
}
