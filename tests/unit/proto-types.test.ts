import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { proto } from '@switchboard/protocol';
import { expect } from 'chai';

const GENERATED = 'protocol/src/proto';

/**
 * protocol/src/proto/ is generated from proto/ (`npm run gen:proto`): a .proto edited without
 * regenerating would leave server and clients typed against a wire format that is no longer
 * the one they speak.
 */
describe('protobuf types (protocol/src/proto)', () => {
  it('are what scripts/gen-proto-types.mjs generates from proto/ now', () => {
    const dir = mkdtempSync(join(tmpdir(), 'proto-types-'));
    try {
      execFileSync(process.execPath, ['scripts/gen-proto-types.mjs', '--out', dir], { stdio: 'pipe' });
      const fresh = readdirSync(dir).sort();
      expect(readdirSync(GENERATED).sort(), 'files (run `npm run gen:proto`)').to.deep.equal(fresh);
      for (const name of fresh) {
        expect(readFileSync(join(GENERATED, name), 'utf8'), `${name} (run \`npm run gen:proto\`)`).to.equal(
          readFileSync(join(dir, name), 'utf8'),
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // The generator writes down how proto-loader decodes under PROTO_LOADER_OPTIONS; these pin it
  // against the installed protobufjs.
  it('describe what proto-loader decodes under PROTO_LOADER_OPTIONS', () => {
    const def = protoLoader.loadSync(
      ['switchboard/chat/v1/chat.proto', 'vertx/event/v1alpha/eventbus.proto'],
      {
        ...proto.PROTO_LOADER_OPTIONS,
        includeDirs: ['proto'],
      },
    );
    const method = (service: string, name: string): protoLoader.MethodDefinition<object, object> => {
      const m = (def[service] as protoLoader.ServiceDefinition)[name];
      if (!m) throw new Error(`no ${service}.${name}`);
      return m;
    };
    const join_ = method('switchboard.chat.v1.Chat', 'Join');
    const joinRequest: proto.JoinRequest = { room: 'red', since: 0 };
    // proto3 `optional` is a oneof: decoded with its virtual field; unset fields are absent
    expect(join_.requestDeserialize(join_.requestSerialize(joinRequest))).to.deep.equal({
      room: 'red',
      since: 0,
      _since: 'since',
    });
    const event: proto.ChatEvent = { seq: 5, presence: { room: 'red', users: [] } };
    // uint64 as a number, empty repeated fields absent, the oneof named
    expect(join_.responseDeserialize(join_.responseSerialize(event))).to.deep.equal({
      seq: 5,
      presence: { room: 'red' },
      event: 'presence',
    });
    const request = method('vertx.event.v1alpha.EventBusBridge', 'Request');
    // reply_body_format = 7 (no such name), body = { binary: '' }: the number stays; bytes are bytes
    const decoded = request.requestDeserialize(
      Buffer.from([0x20, 0x07, 0x1a, 0x02, 0x12, 0x00]),
    ) as proto.RequestOp;
    expect(decoded.replyBodyFormat).to.equal(7);
    expect(decoded.body?.value).to.equal('binary');
    expect(decoded.body?.binary).to.be.instanceOf(Uint8Array);
  });
});
