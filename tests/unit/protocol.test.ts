import { expect } from 'chai';
import {
  Chat,
  CHAT_REQUEST_ADDRESSES,
  ChatAddressRegex,
  ChatFailure,
  ChatHeader,
  CLIENT_MSG_ID_PATTERN,
  CONTROL_ADDRESS,
  DEFAULT_CHAT_LIMITS,
  DEFAULT_MAX_FRAME_BYTES,
  isRoomName,
  type ReplyOf,
  type RequestAddress,
  type RequestOf,
  RESERVED_HEADER_PREFIX,
  ROOM_NAME_SOURCE,
  ROOM_PATTERN,
  USER_NAME_MAX_LENGTH,
} from '@switchboard/protocol';

/**
 * The protocol package is imported by server, clients and tests alike, so a change to it would
 * pass every test that compares against it: these literals pin the wire format it defines.
 */
describe('@switchboard/protocol (the wire format, pinned)', () => {
  it('names the chat addresses as the bus carries them', () => {
    expect([Chat.join, Chat.send, Chat.history, Chat.leave]).to.deep.equal([
      'chat.join',
      'chat.send',
      'chat.history',
      'chat.leave',
    ]);
    expect(CHAT_REQUEST_ADDRESSES).to.deep.equal(['chat.join', 'chat.send', 'chat.history', 'chat.leave']);
    expect(Chat.room('red')).to.equal('chat.room.red');
    expect(Chat.presence('red')).to.equal('chat.presence.red');
    expect(CONTROL_ADDRESS).to.equal('__sb.control');
  });

  it('names the headers bridges stamp', () => {
    expect(ChatHeader).to.deep.equal({ session: 'sb-session', node: 'sb-node', verifiedUser: 'sb-user' });
    for (const name of Object.values(ChatHeader))
      expect(name.startsWith(RESERVED_HEADER_PREFIX)).to.equal(true);
  });

  it('keeps room names to 1-64 letters, digits, "_" and "-", in the pattern and the permission regexes', () => {
    for (const ok of ['a', 'general', 'A_b-9', 'x'.repeat(64)]) expect(isRoomName(ok), ok).to.equal(true);
    for (const bad of ['', 'x'.repeat(65), 'a.b', 'a b', 'ä', 'a*', 5]) {
      expect(isRoomName(bad), String(bad)).to.equal(false);
    }
    expect(ROOM_PATTERN.test('a\n')).to.equal(false);
    // The same rule under the flags a browser's input pattern (v) and a unicode regex (u) use.
    for (const flags of ['u', 'v']) {
      const re = new RegExp(`^(?:${ROOM_NAME_SOURCE})$`, flags);
      expect(
        ['general', 'A_b-9', 'a.b', 'a b', ''].map((n) => re.test(n)),
        flags,
      ).to.deep.equal([true, true, false, false, false]);
    }
    const room = new RegExp(`^(?:${ChatAddressRegex.room})$`);
    const presence = new RegExp(`^(?:${ChatAddressRegex.presence})$`);
    expect(room.test('chat.room.red') && presence.test('chat.presence.red')).to.equal(true);
    expect(
      room.test('chatxroom.red') || room.test('chat.room.a.b') || room.test(`chat.room.${'a'.repeat(65)}`),
    ).to.equal(false);
  });

  it('holds the failure codes, limits and idempotency-key pattern clients rely on', () => {
    expect(ChatFailure).to.deep.equal({
      BAD_REQUEST: 400,
      FORBIDDEN: 403,
      NOT_FOUND: 404,
      NAME_TAKEN: 409,
      CONFLICT: 409,
      TOO_LARGE: 413,
      INTERNAL: 500,
      UNAVAILABLE: 503,
    });
    expect(DEFAULT_CHAT_LIMITS).to.deep.equal({
      maxTextLength: 4_000,
      joinMaxMessages: 500,
      joinLatest: 50,
      historyMaxLimit: 500,
    });
    expect(DEFAULT_MAX_FRAME_BYTES).to.equal(65_536);
    expect(USER_NAME_MAX_LENGTH).to.equal(64);
    expect(CLIENT_MSG_ID_PATTERN.test('web-1:a.b_c')).to.equal(true);
    expect(CLIENT_MSG_ID_PATTERN.test('a b')).to.equal(false);
  });

  it('types a request by its address (checked by the compiler)', () => {
    const request = <Req, Rep>(_address: RequestAddress<Req, Rep>, _body: NoInfer<Req>): Rep | undefined =>
      undefined;
    const join = request(Chat.join, { room: 'red', user: 'ana', since: 3 });
    const lastSeq: number | undefined = join?.lastSeq;
    // @ts-expect-error chat.send needs a clientMsgId
    request(Chat.send, { room: 'red', user: 'ana' });
    const sent: ReplyOf<typeof Chat.send> = { seq: 1, id: 'm', ts: 0 };
    const history: RequestOf<typeof Chat.history> = { room: 'red', afterSeq: 2 };
    expect([lastSeq, sent.seq, history.afterSeq]).to.deep.equal([undefined, 1, 2]);
  });
});
