import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import {
  ChatError,
  chatErrorOf,
  endsConnection,
  GrpcChatClient,
  grpcTarget,
  isDrain,
} from '../../../messages-lib/src/grpc/index.js';

function configError(fn: () => unknown): ChatError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ChatError);
    expect((err as ChatError).failureType).to.equal('CONFIG');
    return err as ChatError;
  }
  throw new Error('expected a CONFIG error');
}

function trailers(entries: Record<string, string>): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(entries)) md.set(k, v);
  return md;
}

describe('messages-lib/grpc: targets and configuration', () => {
  it('turns what users write into grpc-js targets', () => {
    expect(grpcTarget('dns:///chat.example.com:50051')).to.equal('dns:///chat.example.com:50051');
    expect(grpcTarget('dns:chat:50051')).to.equal('dns:///chat:50051');
    expect(grpcTarget('localhost:50051')).to.equal('dns:///localhost:50051');
    expect(grpcTarget(['127.0.0.1:1', '127.0.0.1:2'])).to.equal('ipv4:127.0.0.1:1,127.0.0.1:2');
    expect(grpcTarget('127.0.0.1:1, 127.0.0.1:2')).to.equal('ipv4:127.0.0.1:1,127.0.0.1:2');
    expect(grpcTarget(['[::1]:1', '[::1]:2'])).to.equal('ipv6:[::1]:1,[::1]:2');
    expect(grpcTarget('ipv4:127.0.0.1:1,127.0.0.1:2')).to.equal('ipv4:127.0.0.1:1,127.0.0.1:2');
    expect(grpcTarget(['10.0.0.1:50051'])).to.equal('dns:///10.0.0.1:50051');
    expect(grpcTarget('unix:/run/sb.sock')).to.equal('unix:/run/sb.sock');
  });

  it('refuses bad targets with a message naming the problem', () => {
    expect(configError(() => grpcTarget('http://127.0.0.1:8080')).message).to.match(
      /not a gRPC target.*GRPC_PORT/,
    );
    expect(configError(() => grpcTarget('127.0.0.1')).message).to.match(/not host:port/);
    expect(configError(() => grpcTarget('127.0.0.1:70000')).message).to.match(/port 1-65535/);
    expect(configError(() => grpcTarget([])).message).to.match(/at least one address/);
    expect(configError(() => grpcTarget('')).message).to.match(/required/);
    expect(configError(() => grpcTarget(['a.example:1', 'b.example:2'])).message).to.match(/dns:\/\/\//);
    expect(configError(() => grpcTarget(['127.0.0.1:1', '[::1]:2'])).message).to.match(/mix IPv4 and IPv6/);
    expect(configError(() => grpcTarget('ipv6:127.0.0.1:1')).message).to.match(/other IP family/);
    expect(configError(() => grpcTarget('::1:50051')).message).to.match(/brackets|not host:port/);
    expect(configError(() => grpcTarget('bad host:1')).message).to.match(/not a host name/);
  });

  it('the client refuses bad options at construction, naming them', () => {
    const ok = { target: '127.0.0.1:50051', user: 'ana' };
    expect(configError(() => new GrpcChatClient({ ...ok, user: ' ' })).message).to.match(/user: required/);
    expect(configError(() => new GrpcChatClient({ ...ok, target: 'ws://x:1' })).message).to.match(/target/);
    expect(configError(() => new GrpcChatClient({ ...ok, requestTimeoutMs: -1 })).message).to.match(
      /requestTimeoutMs: expected a positive number/,
    );
    expect(
      configError(() => new GrpcChatClient({ ...ok, loadBalancing: 'random' as never })).message,
    ).to.match(/loadBalancing/);
    expect(configError(() => new GrpcChatClient({ ...ok, protoDir: '/nonexistent' })).message).to.match(
      /protoDir: \/nonexistent does not contain switchboard\/chat\/v1\/chat.proto/,
    );
    const c = new GrpcChatClient(ok);
    expect(c.target).to.equal('dns:///127.0.0.1:50051');
    expect(c.state).to.equal('closed');
  });

  it('join before connect() is refused', async () => {
    const c = new GrpcChatClient({ target: '127.0.0.1:1', user: 'ana' });
    const err = await c.join('lobby').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(ChatError.is(err, 'CLOSED')).to.equal(true);
  });
});

describe('messages-lib/grpc: statuses as ChatErrors', () => {
  it('keeps a bus failure from the bridge trailers (the chat service code)', () => {
    const e = chatErrorOf(
      {
        code: grpc.status.ALREADY_EXISTS,
        details: 'name taken',
        metadata: trailers({ 'vertx-failure-type': 'RECIPIENT_FAILURE', 'vertx-failure-code': '409' }),
      },
      'joining lobby',
    );
    expect(e).to.include({
      failureType: 'RECIPIENT_FAILURE',
      code: 409,
      message: 'joining lobby: name taken',
    });
    expect(e.retryable).to.equal(false);
    const unavailable = chatErrorOf(
      {
        code: grpc.status.UNAVAILABLE,
        details: 'store down',
        metadata: trailers({ 'vertx-failure-type': 'RECIPIENT_FAILURE', 'vertx-failure-code': '503' }),
      },
      'send',
    );
    expect(unavailable.retryable).to.equal(true);
  });

  it('maps bridge statuses: auth, permission, invalid, timeout, and node loss (retryable)', () => {
    const of = (code: grpc.status, details = '') => chatErrorOf({ code, details }, 'x');
    expect(of(grpc.status.UNAUTHENTICATED, 'not_logged_in: send metadata')).to.include({
      failureType: 'AUTH',
      reason: 'not_logged_in',
    });
    expect(of(grpc.status.PERMISSION_DENIED, 'access_denied: chat.join')).to.include({
      failureType: 'BRIDGE',
      reason: 'access_denied',
    });
    expect(of(grpc.status.INVALID_ARGUMENT, 'room: bad').failureType).to.equal('INVALID');
    expect(of(grpc.status.RESOURCE_EXHAUSTED).retryable).to.equal(false);
    expect(of(grpc.status.DEADLINE_EXCEEDED).failureType).to.equal('TIMEOUT');
    const lost = of(grpc.status.UNAVAILABLE, 'No connection established');
    expect(lost).to.include({ failureType: 'ERROR', code: grpc.status.UNAVAILABLE });
    expect(lost.retryable).to.equal(true);
  });

  it('tells a stream end that means "reconnect" from a refusal, and a drain from a crash', () => {
    const drain = {
      code: grpc.status.UNAVAILABLE,
      details: 'node stopping',
      metadata: trailers({ reconnect: 'true' }),
    };
    expect(endsConnection(drain)).to.equal(true);
    expect(isDrain(drain)).to.equal(true);
    expect(endsConnection({ code: grpc.status.OK, details: '' })).to.equal(true);
    expect(endsConnection({ code: grpc.status.CANCELLED, details: 'server cancelled' })).to.equal(true);
    expect(endsConnection({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'not reading' })).to.equal(true);
    expect(isDrain({ code: grpc.status.UNAVAILABLE, details: 'x' })).to.equal(false);
    expect(endsConnection({ code: grpc.status.PERMISSION_DENIED, details: 'access_denied' })).to.equal(false);
    const refused = {
      code: grpc.status.UNAVAILABLE,
      details: 'store down',
      metadata: trailers({ 'vertx-failure-type': 'RECIPIENT_FAILURE', 'vertx-failure-code': '503' }),
    };
    expect(endsConnection(refused)).to.equal(false);
  });
});
