import { type ServerUnaryCall, type ServerWritableStream, status } from '@grpc/grpc-js';
import type { proto } from '@switchboard/protocol';
import type { HealthHandlers } from './proto.js';

/** How often Watch streams re-read the status (it is also pushed at once when the node stops). */
const WATCH_POLL_MS = 1_000;

/**
 * `grpc.health.v1.Health`: SERVING while the node takes traffic (the same checks as `GET /ready`),
 * NOT_SERVING from the moment it starts stopping. Known services: "" (the server) and each
 * service's full name.
 */
export class HealthService {
  private readonly watchers = new Map<() => void, () => void>();

  constructor(
    private readonly services: string[],
    private readonly ready: () => boolean,
  ) {}

  status(): proto.HealthCheckResponse_ServingStatus {
    return this.ready() ? 'SERVING' : 'NOT_SERVING';
  }

  /** Ends every Watch stream (after a last status push), so that shutdown need not wait for them. */
  endAll(): void {
    for (const [push, end] of [...this.watchers]) {
      push();
      end();
    }
  }

  handlers(): HealthHandlers {
    return {
      check: (call: ServerUnaryCall<proto.HealthCheckRequest, proto.HealthCheckResponse>, callback) => {
        const name = call.request.service ?? '';
        if (name !== '' && !this.services.includes(name))
          return callback({ code: status.NOT_FOUND, details: `unknown service ${JSON.stringify(name)}` });
        callback(null, { status: this.status() });
      },
      watch: (call: ServerWritableStream<proto.HealthCheckRequest, proto.HealthCheckResponse>) => {
        const name = call.request.service ?? '';
        const known = name === '' || this.services.includes(name);
        let last: proto.HealthCheckResponse_ServingStatus | undefined;
        const push = (): void => {
          const now: proto.HealthCheckResponse_ServingStatus = known ? this.status() : 'SERVICE_UNKNOWN';
          if (now === last) return;
          last = now;
          call.write({ status: now });
        };
        push();
        const timer = setInterval(push, WATCH_POLL_MS);
        timer.unref();
        const done = (): void => {
          clearInterval(timer);
          this.watchers.delete(push);
        };
        this.watchers.set(push, () => {
          done();
          call.end();
        });
        call.on('cancelled', done);
        call.on('close', done);
      },
    };
  }
}
