import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { BusNode } from '../helpers/bus-nodes.js';
import { ensureGrpcurl } from '../infra/grpcurl.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeOnExit } from '../infra/proc.js';

/** Runs grpcurl (bounded); resolves with its exit code and output. */
function grpcurl(bin: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(bin, ['-plaintext', '-max-time', '20', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

describe('gRPC bridge through grpcurl (server reflection)', function () {
  this.timeout(120_000);
  let node: BusNode;
  let bin: string;
  let addr: string;

  before(async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-grpcurl-'));
    removeOnExit(dataDir);
    [bin, node] = await Promise.all([
      ensureGrpcurl(),
      BusNode.start('grpcurl-node', {
        DATA_DIR: dataDir,
        BRIDGE_PERMISSIONS: JSON.stringify({ inbound: [{ address: 'test.grpcurl' }], outbound: [] }),
      }),
    ]);
    addr = `127.0.0.1:${node.grpcPort}`;
  });

  after(async () => {
    await node?.proc.stop();
  });

  it('lists the services', async () => {
    const r = await grpcurl(bin, [addr, 'list']);
    expect(r.code, r.out).to.equal(0);
    expect(r.out.split('\n')).to.include.members([
      'vertx.event.v1alpha.EventBusBridge',
      'switchboard.chat.v1.Chat',
      'grpc.health.v1.Health',
    ]);
  });

  it('calls Ping and Publish', async () => {
    const ping = await grpcurl(bin, [addr, 'vertx.event.v1alpha.EventBusBridge/Ping']);
    expect(ping.code, ping.out).to.equal(0);
    expect(ping.out.trim()).to.equal('{}');
    await node.consumer('test.grpcurl', 'record');
    const body = JSON.stringify({ address: 'test.grpcurl', body: { proto: { hello: 'grpcurl', n: 2 } } });
    const pub = await grpcurl(bin, ['-d', body, addr, 'vertx.event.v1alpha.EventBusBridge/Publish']);
    expect(pub.code, pub.out).to.equal(0);
    expect(await node.received('test.grpcurl')).to.deep.equal([{ hello: 'grpcurl', n: 2 }]);
    const denied = await grpcurl(bin, [
      '-d',
      '{"address":"other"}',
      addr,
      'vertx.event.v1alpha.EventBusBridge/Publish',
    ]);
    expect(denied.code).to.not.equal(0);
    expect(denied.out).to.match(/PermissionDenied/);
  });

  it('sends a chat message', async () => {
    const body = JSON.stringify({ room: 'curl', user: 'ann', clientMsgId: 'g-1', text: 'hi from grpcurl' });
    const r = await grpcurl(bin, ['-d', body, addr, 'switchboard.chat.v1.Chat/Send']);
    expect(r.code, r.out).to.equal(0);
    expect(JSON.parse(r.out)).to.include({ seq: '1' });
  });
});
