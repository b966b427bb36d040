import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { GrpcChatClient, findProtoRoot, type ChatMessage } from '../../../messages-lib/src/grpc/index.js';
import { waitFor } from './fake-server.js';

interface Msg {
  room: string;
  seq: number;
  id: string;
  clientMsgId: string;
  user: string;
  text: string;
  ts: number;
}

/**
 * An in-process Chat server on 127.0.0.1 (real grpc-js, the repository's proto) that keeps
 * messages in memory and can end every Join stream as a draining node does.
 */
class FakeChat {
  readonly server = new grpc.Server();
  readonly messages: Msg[] = [];
  readonly joins: { since: number | undefined }[] = [];
  readonly sendIds: string[] = [];
  /** clientMsgIds whose next Send is stored and then answered UNAVAILABLE (the ack is lost). */
  readonly loseAck = new Set<string>();
  private readonly streams = new Set<grpc.ServerWritableStream<Record<string, unknown>, unknown>>();
  port = 0;

  async start(): Promise<void> {
    const def = protoLoader.loadSync('switchboard/chat/v1/chat.proto', {
      keepCase: false,
      longs: Number,
      defaults: false,
      oneofs: true,
      includeDirs: [findProtoRoot()],
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      switchboard: { chat: { v1: { Chat: { service: grpc.ServiceDefinition } } } };
    };
    this.server.addService(pkg.switchboard.chat.v1.Chat.service, {
      join: (call: grpc.ServerWritableStream<Record<string, unknown>, unknown>) => {
        const since = call.request.since as number | undefined;
        this.joins.push({ since });
        this.streams.add(call);
        call.on('cancelled', () => this.streams.delete(call));
        const from = since ?? 0;
        call.write({
          seq: from,
          joined: { room: call.request.room, lastSeq: this.messages.length, node: 'fake' },
        });
        for (const m of this.messages) if (m.seq > from) call.write({ seq: m.seq, message: m });
      },
      send: (
        call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>,
        cb: grpc.sendUnaryData<unknown>,
      ) => {
        const id = call.request.clientMsgId as string;
        this.sendIds.push(id);
        let m = this.messages.find((x) => x.clientMsgId === id);
        if (!m) {
          m = {
            room: call.request.room as string,
            seq: this.messages.length + 1,
            id: `id-${this.messages.length + 1}`,
            clientMsgId: id,
            user: call.request.user as string,
            text: call.request.text as string,
            ts: Date.now(),
          };
          this.messages.push(m);
          for (const s of this.streams) s.write({ seq: m.seq, message: m });
        }
        if (this.loseAck.delete(id)) return cb({ code: grpc.status.UNAVAILABLE, details: 'node died' });
        cb(null, { seq: m.seq, id: m.id, ts: m.ts });
      },
      history: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { messages: [] }),
      upload: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: grpc.status.UNIMPLEMENTED }),
      download: (call: grpc.ServerWritableStream<unknown, unknown>) =>
        call.emit('error', { code: grpc.status.UNIMPLEMENTED }),
    });
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      ),
    );
  }

  /** Ends every Join stream as a draining node: UNAVAILABLE with the `reconnect` trailer. */
  drain(): void {
    for (const s of [...this.streams]) {
      this.streams.delete(s);
      const md = new grpc.Metadata();
      md.set('reconnect', 'true');
      s.emit('error', { code: grpc.status.UNAVAILABLE, details: 'node stopping', metadata: md });
    }
  }

  get liveStreams(): number {
    return this.streams.size;
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

describe('messages-lib/grpc: rejoin and resend (in-process Chat server)', () => {
  let fake: FakeChat;
  let client: GrpcChatClient | undefined;

  beforeEach(async () => {
    fake = new FakeChat();
    await fake.start();
  });

  afterEach(async () => {
    await client?.close();
    fake.stop();
  });

  it('a drained Join stream is reopened with since; a send whose ack was lost is resent with its clientMsgId and shown once', async () => {
    client = new GrpcChatClient({
      target: `127.0.0.1:${fake.port}`,
      user: 'ana',
      reconnect: { baseMs: 20, maxMs: 100, drainJitterMs: 50 },
    });
    const reconnects: { code: number; delayMs: number }[] = [];
    client.on('reconnecting', (r) => reconnects.push(r));
    await client.connect();
    const room = await client.join('lobby');
    const seen: ChatMessage[] = [];
    room.on('message', (m) => seen.push(m));
    for (const t of ['a', 'b', 'c']) await room.send(t);
    await waitFor(() => room.lastSeq === 3, 'three messages');

    fake.drain();
    await waitFor(() => fake.joins.length === 2 && fake.liveStreams === 1, 'the rejoin');
    expect(fake.joins[1]).to.deep.equal({ since: 3 });
    expect(reconnects).to.have.length(1);
    expect(reconnects[0]!.code).to.equal(grpc.status.UNAVAILABLE);
    expect(reconnects[0]!.delayMs).to.be.at.most(50); // a drain: jitter only, no backoff

    // stored, but the ack is lost: the outbox resends the same clientMsgId, the server dedupes
    const sending = room.send('d');
    // queued synchronously; the first attempt goes out once the outbox storage has it
    expect(room.pending).to.have.length(1);
    fake.loseAck.add(room.pending[0]!.clientMsgId);
    const ack = await sending;
    expect(ack.seq).to.equal(4);
    const id = fake.messages[3]!.clientMsgId;
    expect(fake.sendIds.filter((x) => x === id)).to.have.length(2);
    await waitFor(() => room.lastSeq === 4, 'seq 4');
    expect(seen.map((m) => m.seq)).to.deep.equal([1, 2, 3, 4]);
    expect(room.messages.map((m) => m.text)).to.deep.equal(['a', 'b', 'c', 'd']);
    expect(room.pending).to.deep.equal([]);
    expect(client.state).to.equal('open');
  });
});
