import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { BusNode } from '../helpers/bus-nodes.js';
import { startVertxBridge, type VertxBridge } from '../infra/vertx.js';

/**
 * Vert.x parity, measured against Vert.x itself: every case sends the same frames to a Vert.x 5
 * SockJS event bus bridge (tests/infra/vertx/BridgeServer.java) and to a Switchboard node with the
 * same permissions and equivalent consumers, over the raw WebSocket endpoint and over SockJS
 * (sockjs-client, websocket and xhr-streaming transports), and compares what came back frame by
 * frame, after normalising what is random on either side (the servers' own reply addresses).
 *
 * A difference passes only when an entry of DEVIATIONS explains it; each entry is documented in
 * docs/protocol.md ("Differences from Vert.x"), and one that no case needs any more fails the
 * run, so the list stays exact.
 */

const require = createRequire(import.meta.url);
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Both servers' reply timeout: short, for the TIMEOUT case. */
const REPLY_TIMEOUT_MS = 3000;
const WAIT_MS = 10_000;
/** After a case's last frame, how long stray frames are waited for. */
const QUIET_MS = 150;

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

type TransportName = 'raw websocket' | 'sockjs websocket' | 'sockjs xhr-streaming';
const TRANSPORTS: TransportName[] = ['raw websocket', 'sockjs websocket', 'sockjs xhr-streaming'];

type Event =
  | { dir: 'out'; frame: unknown }
  | { dir: 'in'; frame: unknown; binary: boolean }
  | { dir: 'close'; code: number; reason: string };

interface SockJsSocket {
  onopen: (() => void) | null;
  onmessage: ((e: { data: string }) => void) | null;
  onclose: ((e: { code: number; reason: string }) => void) | null;
  send(text: string): void;
  close(): void;
}
const SockJS = require('sockjs-client') as new (
  url: string,
  reserved: null,
  options: { transports: string[] },
) => SockJsSocket;

/** One client connection: records everything sent and received, in order. */
class Conn {
  readonly events: Event[] = [];
  private readonly unread: { frame: Record<string, unknown> }[] = [];
  private waiter: (() => void) | undefined;
  private closed = false;
  private sendText!: (text: string) => void;
  private closeSocket!: () => void;

  static async open(httpUrl: string, transport: TransportName): Promise<Conn> {
    const c = new Conn();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        c.close();
        reject(new Error(`${transport} to ${httpUrl} did not open within ${WAIT_MS} ms`));
      }, WAIT_MS);
      const opened = (): void => {
        clearTimeout(timer);
        resolve();
      };
      if (transport === 'raw websocket') {
        const ws = new WebSocket(`${httpUrl.replace(/^http/, 'ws')}/eventbus/websocket`);
        ws.on('open', opened);
        ws.on('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
        ws.on('message', (data: Buffer, binary: boolean) => c.received(data.toString(), binary));
        ws.on('close', (code: number, reason: Buffer) => c.onClosed(code, reason.toString()));
        c.sendText = (text) => ws.send(text);
        c.closeSocket = () => ws.terminate();
      } else {
        const sock = new SockJS(`${httpUrl}/eventbus`, null, {
          transports: [transport === 'sockjs websocket' ? 'websocket' : 'xhr-streaming'],
        });
        sock.onopen = opened;
        sock.onmessage = (e) => c.received(e.data, false);
        sock.onclose = (e) => {
          clearTimeout(timer);
          reject(new Error(`closed: ${e.code} ${e.reason}`));
          c.onClosed(e.code, e.reason);
        };
        c.sendText = (text) => sock.send(text);
        c.closeSocket = () => sock.close();
      }
    });
    return c;
  }

  private received(text: string, binary: boolean): void {
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      frame = `<not JSON> ${text}`;
    }
    this.events.push({ dir: 'in', frame, binary });
    if (typeof frame === 'object' && frame !== null)
      this.unread.push({ frame: frame as Record<string, unknown> });
    this.waiter?.();
  }

  private onClosed(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.events.push({ dir: 'close', code, reason });
    this.waiter?.();
  }

  /** Sends a frame: an object as JSON, a string as it is. */
  send(frame: unknown): void {
    const text = typeof frame === 'string' ? frame : JSON.stringify(frame);
    this.events.push({ dir: 'out', frame });
    if (!this.closed) this.sendText(text);
  }

  /**
   * The first frame not taken yet that matches, waiting for it (bounded); undefined when none
   * came: a case goes on, and the comparison shows what is missing.
   */
  async next(
    pred: (f: Record<string, unknown>) => boolean,
    ms = WAIT_MS,
  ): Promise<Record<string, unknown> | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.unread.findIndex((u) => pred(u.frame));
      if (i >= 0) return this.unread.splice(i, 1)[0]!.frame;
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
  }

  private syncs = 0;

  /**
   * Waits until the server has handled every frame sent so far: an echo request goes behind them,
   * and its reply (left out of the transcript) comes after their answers.
   */
  async sync(): Promise<void> {
    if (this.closed) return;
    const replyAddress = `sync-${++this.syncs}`;
    this.sendText(JSON.stringify({ type: 'send', address: 'echo', body: 'sync', replyAddress }));
    await this.next((f) => f.address === replyAddress);
    const i = this.events.findIndex(
      (e) => e.dir === 'in' && (e.frame as { address?: unknown }).address === replyAddress,
    );
    if (i >= 0) this.events.splice(i, 1);
  }

  async quiet(ms = QUIET_MS): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
  }

  close(): void {
    this.closed = true;
    this.closeSocket();
  }
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

interface Case {
  name: string;
  run(c: Conn): Promise<void>;
  /** How long the case may take (default mocha's for the suite). */
  timeoutMs?: number;
}

const isRec = (address: string) => (f: Record<string, unknown>) => f.type === 'rec' && f.address === address;
const LONG = 'x'.repeat(201);

/**
 * Sends the frames one at a time, each once the server has answered the one before: an error is
 * written at once but a reply takes a trip on the bus, so frames sent together could be answered
 * in a different order by each server.
 */
async function oneByOne(c: Conn, frames: unknown[]): Promise<void> {
  for (const f of frames) {
    c.send(f);
    await c.sync();
  }
}

const CASES: Case[] = [
  {
    name: 'send with a reply',
    async run(c) {
      c.send({ type: 'send', address: 'echo', body: { hello: 'vertx', n: [1, 2] }, replyAddress: 'r1' });
      c.send({ type: 'send', address: 'echo', body: 'text', replyAddress: 'r2' });
      c.send({ type: 'send', address: 'echo', replyAddress: 'r3' }); // no body: null
      await c.next(isRec('r3'));
    },
  },
  {
    name: 'send without a reply',
    async run(c) {
      c.send({ type: 'send', address: 'echo', body: 1 });
      await c.sync();
    },
  },
  {
    name: 'publish',
    async run(c) {
      c.send({ type: 'register', address: 'pub.a' });
      await c.sync();
      c.send({ type: 'publish', address: 'pub.a', body: { n: 1 } });
      await c.next(isRec('pub.a'));
      c.send({ type: 'publish', address: 'pub.a', body: { n: 2 }, replyAddress: 'r1' }); // ignored
      await c.next(isRec('pub.a'));
      await oneByOne(c, [
        { type: 'publish', address: 'pub.a', body: 3, replyAddress: 'r'.repeat(37) },
        { type: 'publish', address: 'pub.nobody', body: 4 },
      ]);
    },
  },
  {
    name: 'register and unregister',
    async run(c) {
      c.send({ type: 'register', address: 'pub.b' });
      await c.sync();
      c.send({ type: 'send', address: 'pub.b', body: 'one' });
      await c.next(isRec('pub.b'));
      await oneByOne(c, [
        { type: 'register', address: 'pub.b' },
        { type: 'unregister', address: 'pub.b' },
        { type: 'publish', address: 'pub.b', body: 'after' },
        { type: 'unregister', address: 'pub.b' },
        { type: 'unregister', address: 'pub.never' },
        { type: 'register', address: `pub.${LONG}` },
      ]);
    },
  },
  {
    name: 'denied send, publish, register, unregister',
    async run(c) {
      await oneByOne(c, [
        { type: 'send', address: 'secret', body: 1 },
        { type: 'send', address: 'secret', body: 1, replyAddress: 'r1' },
        { type: 'publish', address: 'secret', body: 1 },
        { type: 'register', address: 'secret' },
        { type: 'unregister', address: 'secret' },
        { type: 'register', address: 'echo' }, // inbound only
        { type: 'unregister', address: 'echo' },
        { type: 'send', address: 'pub' }, // the regex matches the whole address
      ]);
    },
  },
  {
    name: 'missing or invalid address',
    async run(c) {
      await oneByOne(c, [
        { type: 'send', address: 5, body: 1 },
        { type: 'send', address: true, body: 1 },
        { type: 'send', body: 1 },
        { type: 'send', address: null, body: 1 },
        { type: 'publish', body: 1 },
        { type: 'register' },
        { type: 'unregister' },
        { type: 'unregister', address: 5 },
        { type: 'send', address: {}, body: 1 },
        { type: 'publish', address: 1.5, body: 1 },
      ]);
    },
  },
  {
    name: 'invalid JSON',
    async run(c) {
      for (const text of ['not json', '{"type":"send"', '[1,2]', '"send"', '42', 'null']) c.send(text);
      await c.sync();
    },
  },
  {
    name: 'missing and unknown type',
    async run(c) {
      await oneByOne(c, [
        { address: 'echo', body: 1 },
        { type: null, address: 'echo' },
        { type: 'shout', address: 'echo' },
        { type: 'shout' },
        { type: 5, address: 'echo' },
        { type: 'SEND', address: 'echo' },
      ]);
    },
  },
  {
    name: 'ping',
    async run(c) {
      c.send({ type: 'ping' });
      c.send({ type: 'ping', address: 'anything' });
      await c.sync();
    },
  },
  {
    name: 'reply failures: RECIPIENT_FAILURE, NO_HANDLERS',
    async run(c) {
      c.send({ type: 'send', address: 'fail', body: 1, replyAddress: 'r1' });
      await c.next(isErrFor('r1'));
      c.send({ type: 'send', address: 'pub.nobody', body: 1, replyAddress: 'r2' });
      await c.next(isErrFor('r2'));
    },
  },
  {
    name: 'reply timeout',
    timeoutMs: REPLY_TIMEOUT_MS + 2 * WAIT_MS,
    async run(c) {
      c.send({ type: 'register', address: 'pub.t' });
      await c.sync();
      c.send({ type: 'send', address: 'pub.t', body: 'never answered', replyAddress: 'r1' });
      await c.next(isRec('pub.t'));
      await c.next(isErrFor('r1'), REPLY_TIMEOUT_MS + WAIT_MS);
    },
  },
  {
    name: 'a reply with its own replyAddress continues the exchange (replyAndRequest)',
    async run(c) {
      c.send({ type: 'send', address: 'ask', body: { q: 1 }, replyAddress: 'r1' });
      const question = await c.next(isRec('r1'));
      c.send({ type: 'send', address: question?.replyAddress, body: { yes: true }, replyAddress: 'r2' });
      await c.next(isRec('r2'));
      // Answered without a replyAddress, the exchange ends there; a second answer is refused.
      c.send({ type: 'send', address: 'ask', body: { q: 2 }, replyAddress: 'r3' });
      const again = await c.next(isRec('r3'));
      await oneByOne(c, [
        { type: 'send', address: again?.replyAddress, body: { yes: false } },
        { type: 'send', address: again?.replyAddress, body: { twice: true }, replyAddress: 'r4' },
      ]);
    },
  },
  {
    name: 'a request from the server to a client registration',
    async run(c) {
      c.send({ type: 'register', address: 'pub.q' });
      await c.sync();
      c.send({
        type: 'send',
        address: 'trigger',
        body: { address: 'pub.q', body: { ping: 1 } },
        replyAddress: 'r1',
      });
      const request = await c.next(isRec('pub.q'));
      c.send({ type: 'send', address: request?.replyAddress, body: { pong: 1 } });
      await c.next(isRec('r1'));
    },
  },
  {
    name: 'headers',
    async run(c) {
      c.send({
        type: 'send',
        address: 'echo',
        body: 1,
        headers: { a: 'x', 'b-c': 'y z' },
        replyAddress: 'r1',
      });
      await c.next(isRec('r1'));
      c.send({ type: 'register', address: 'pub.h' });
      await c.sync();
      c.send({ type: 'publish', address: 'pub.h', body: 2, headers: { h: 'v' } });
      await c.next(isRec('pub.h'));
      await oneByOne(c, [
        { type: 'send', address: 'echo', body: 3, headers: {}, replyAddress: 'r2' },
        { type: 'send', address: 'echo', body: 4, headers: null, replyAddress: 'r3' },
        { type: 'send', address: 'echo', body: 5, headers: { n: 5, t: true }, replyAddress: 'r4' },
        { type: 'send', address: 'echo', body: 6, headers: 'h', replyAddress: 'r5' },
        { type: 'send', address: 'echo', body: 7, headers: { a: null }, replyAddress: 'r6' },
      ]);
    },
  },
  {
    name: 'reply addresses',
    async run(c) {
      await oneByOne(c, [
        { type: 'send', address: 'echo', body: 1, replyAddress: 7 },
        { type: 'send', address: 'echo', body: 2, replyAddress: '' },
        { type: 'send', address: 'echo', body: 3, replyAddress: null },
        { type: 'send', address: 'echo', body: 4, replyAddress: 'a'.repeat(36) },
        { type: 'send', address: 'echo', body: 5, replyAddress: 'a'.repeat(37) },
        { type: 'send', address: 'secret', body: 6, replyAddress: 'a'.repeat(37) },
      ]);
    },
  },
  {
    name: 'long addresses',
    async run(c) {
      await oneByOne(c, [
        { type: 'register', address: `pub.${LONG}` },
        { type: 'send', address: `secret.${LONG}`, body: 1 },
        { type: 'publish', address: `secret.${LONG}`, body: 1 },
        { type: 'unregister', address: `secret.${LONG}` },
      ]);
    },
  },
  {
    name: 'many errors: the socket stays open',
    async run(c) {
      for (let i = 0; i < 150; i++) {
        c.send(
          i % 3 === 0
            ? 'nope'
            : i % 3 === 1
              ? { type: 'send', address: 'secret' }
              : { type: 'shout', address: 'x' },
        );
      }
      await c.sync();
      c.send({ type: 'send', address: 'echo', body: 'still here', replyAddress: 'r1' });
      await c.next(isRec('r1'));
    },
  },
];

function isErrFor(address: string) {
  return (f: Record<string, unknown>) => f.type === 'err' && f.address === address;
}

// ---------------------------------------------------------------------------------------------
// Normalisation and the allow-list
// ---------------------------------------------------------------------------------------------

/**
 * The servers' own reply addresses (Vert.x's `__vertx.reply.N`, Switchboard's UUID aliases) become
 * `<reply N>` in order of appearance, wherever they occur; a TIMEOUT failure's message ends with
 * the bus addresses involved, which are cut.
 */
function normalise(events: Event[]): Event[] {
  const names = new Map<string, string>();
  for (const e of events) {
    const r = e.dir === 'in' ? (e.frame as { replyAddress?: unknown }).replyAddress : undefined;
    if (typeof r === 'string' && !names.has(r)) names.set(r, `<reply ${names.size + 1}>`);
  }
  const rewrite = (v: unknown): unknown => {
    if (typeof v === 'string') return names.get(v) ?? v;
    if (Array.isArray(v)) return v.map(rewrite);
    if (typeof v === 'object' && v !== null)
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, rewrite(x)]));
    return v;
  };
  return events.map((e) => {
    if (e.dir === 'close') return e;
    const frame = rewrite(e.frame) as Record<string, unknown>;
    if (e.dir === 'in' && frame.failureType === 'TIMEOUT' && typeof frame.message === 'string')
      frame.message = frame.message.replace(/ address: .*$/, ' address: <…>');
    return { ...e, frame };
  });
}

interface Context {
  transport: TransportName;
  case: string;
}

/** A documented difference: rewrites the transcripts as they would be without it. */
interface Deviation {
  id: string;
  reason: string;
  apply(vertx: Event[], switchboard: Event[], ctx: Context): { vertx: Event[]; switchboard: Event[] };
}

const frameOf = (e: Event): Record<string, unknown> =>
  e.dir === 'close'
    ? {}
    : typeof e.frame === 'object' && e.frame !== null
      ? (e.frame as Record<string, unknown>)
      : {};

/** Keeps Switchboard's events except those `drop` picks; `drop` sees the last frame sent before. */
function dropFromSwitchboard(drop: (e: Event, lastSent: Record<string, unknown>, ctx: Context) => boolean) {
  return (vertx: Event[], switchboard: Event[], ctx: Context) => {
    let lastSent: Record<string, unknown> = {};
    const kept = switchboard.filter((e) => {
      if (e.dir === 'out') lastSent = frameOf(e);
      return !drop(e, lastSent, ctx);
    });
    return { vertx, switchboard: kept };
  };
}

/** Switchboard's err frame `body` answering a frame `when` picks becomes Vert.x's `{type:'err', body: vertxBody}`. */
function replaceSwitchboardErr(
  body: string,
  when: (sent: Record<string, unknown>) => boolean,
  vertxBody: string,
) {
  return (vertx: Event[], switchboard: Event[]) => {
    let lastSent: Record<string, unknown> = {};
    return {
      vertx,
      switchboard: switchboard.map((e): Event => {
        if (e.dir === 'out') lastSent = frameOf(e);
        return isErrBody(e, body) && when(lastSent) ? { ...e, frame: { type: 'err', body: vertxBody } } : e;
      }),
    };
  };
}

const isErrBody = (e: Event, body: string): e is Extract<Event, { dir: 'in' }> =>
  e.dir === 'in' && frameOf(e).type === 'err' && frameOf(e).body === body;

/**
 * Every difference between Vert.x 5 and Switchboard that the cases show, with its reason. Each is
 * documented in docs/protocol.md under "Differences from Vert.x" by its id.
 */
const DEVIATIONS: Deviation[] = [
  {
    id: 'hello-frame',
    reason: 'the raw endpoint greets with a __sb.control hello (session, node) that messages-lib uses',
    apply: dropFromSwitchboard(
      (e, _s, ctx) =>
        ctx.transport === 'raw websocket' && e.dir === 'in' && frameOf(e).address === '__sb.control',
    ),
  },
  {
    id: 'pong',
    reason: 'the raw endpoint answers ping with pong, so a client can tell a live socket from a dead one',
    apply: dropFromSwitchboard(
      (e, _s, ctx) => ctx.transport === 'raw websocket' && e.dir === 'in' && frameOf(e).type === 'pong',
    ),
  },
  {
    id: 'text-frames',
    reason:
      'the raw endpoint sends text WebSocket frames (Vert.x: binary), which browsers hand over as strings',
    apply: (vertx, switchboard, ctx) => ({
      vertx:
        ctx.transport === 'raw websocket'
          ? vertx.map((e) => (e.dir === 'in' && e.binary ? { ...e, binary: false } : e))
          : vertx,
      switchboard,
    }),
  },
  {
    id: 'err-message',
    reason: 'an err frame refusing a frame may carry a `message` saying why, besides the Vert.x body',
    apply: (vertx, switchboard) => ({
      vertx,
      switchboard: switchboard.map((e) => {
        const f = frameOf(e);
        if (e.dir !== 'in' || f.type !== 'err' || f.body === undefined || f.message === undefined) return e;
        const { message: _message, ...rest } = f;
        return { ...e, frame: rest };
      }),
    }),
  },
  {
    id: 'err-names-frame',
    reason:
      'on the raw endpoint, an err frame refusing a frame names it in a `refused` field by the address and replyAddress it was sent with, so that a client can tell which operation failed',
    apply: (vertx, switchboard, ctx) => {
      if (ctx.transport !== 'raw websocket') return { vertx, switchboard };
      // Only what the client sent as an address or a replyAddress may come back in an err frame,
      // and only inside `refused`: nothing else of the frame changes.
      const sent = { address: new Set<unknown>(), replyAddress: new Set<unknown>() };
      const isEcho = (refused: unknown): boolean => {
        if (typeof refused !== 'object' || refused === null || Array.isArray(refused)) return false;
        const keys = Object.keys(refused);
        return (
          keys.length > 0 &&
          keys.every(
            (k) =>
              (k === 'address' || k === 'replyAddress') &&
              sent[k].has((refused as Record<string, unknown>)[k]),
          )
        );
      };
      return {
        vertx,
        switchboard: switchboard.map((e) => {
          const f = frameOf(e);
          if (e.dir === 'out') {
            if (typeof f.address === 'string') sent.address.add(f.address);
            if (typeof f.replyAddress === 'string') sent.replyAddress.add(f.replyAddress);
            return e;
          }
          if (e.dir !== 'in' || f.type !== 'err' || f.body === undefined || !('refused' in f)) return e;
          const { refused, ...rest } = f;
          return isEcho(refused) ? { ...e, frame: rest } : e;
        }),
      };
    },
  },
  {
    id: 'headers-not-object',
    reason:
      '`headers` that is not a JSON object, or a header that is null: Vert.x fails on it and answers nothing, Switchboard answers invalid_frame',
    apply: dropFromSwitchboard((e, sent) => {
      if (!isErrBody(e, 'invalid_frame')) return false;
      const h = sent.headers;
      if (h === undefined || h === null) return false;
      return typeof h !== 'object' || Array.isArray(h) || Object.values(h).includes(null);
    }),
  },
  {
    id: 'address-length',
    reason:
      'addresses over 200 characters are refused (max_address_length_reached) in every frame, before any permission regex runs on them; Vert.x checks register only',
    apply: replaceSwitchboardErr(
      'max_address_length_reached',
      (sent) => sent.type !== 'register',
      'access_denied', // what Vert.x answers here: every long address of the cases is denied
    ),
  },
  {
    id: 'non-string-values',
    reason:
      'an address that is an object, an array or a fraction is refused (invalid_frame); Vert.x turns it into a string the Java way and goes on',
    apply: replaceSwitchboardErr(
      'invalid_frame',
      (sent) =>
        sent.address !== undefined &&
        typeof sent.address !== 'string' &&
        !Number.isSafeInteger(sent.address) &&
        typeof sent.address !== 'boolean',
      'access_denied', // what Vert.x answers here: "{}" and "1.5" are denied
    ),
  },
];

// ---------------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------------

function show(events: Event[]): string {
  return events
    .map((e) =>
      e.dir === 'close'
        ? `  closed ${e.code} ${e.reason}`
        : `  ${e.dir === 'out' ? '>' : e.binary ? '< (binary)' : '<'} ${typeof e.frame === 'string' ? e.frame : JSON.stringify(e.frame)}`,
    )
    .join('\n');
}

describe('Vert.x conformance: the same frames to Vert.x 5 and to Switchboard', function () {
  this.timeout(60_000);

  let vertx: VertxBridge | undefined;
  let node: BusNode | undefined;
  let dir: string | undefined;
  const used = new Set<string>();
  let ran = 0;
  const total = TRANSPORTS.length * CASES.length;

  before(async function () {
    this.timeout(240_000);
    dir = await mkdtemp(join(tmpdir(), 'sb-vertx-conformance-'));
    const [v, n] = await Promise.allSettled([
      startVertxBridge({ replyTimeoutMs: REPLY_TIMEOUT_MS }),
      BusNode.start('vertx-conformance', {
        DATA_DIR: dir,
        BRIDGE_REPLY_TIMEOUT_MS: String(REPLY_TIMEOUT_MS),
        // The permissions of BridgeServer.java (the node adds its chat addresses, unused here).
        BRIDGE_PERMISSIONS: JSON.stringify({
          inbound: [
            { address: 'echo' },
            { address: 'fail' },
            { address: 'ask' },
            { address: 'trigger' },
            { addressRegex: 'pub\\..*' },
          ],
          outbound: [{ addressRegex: 'pub\\..*' }],
        }),
      }),
    ]);
    if (v.status === 'fulfilled') vertx = v.value;
    if (n.status === 'fulfilled') node = n.value;
    if (v.status === 'rejected') throw v.reason;
    if (n.status === 'rejected') throw n.reason;
    // BridgeServer.java's consumers: echo, fail, ask, trigger.
    await node!.consumer('echo', 'mirror');
    await node!.consumer('fail', 'refuse');
    await node!.consumer('ask', 'converse');
    await node!.consumer('trigger', 'relay');
  });

  after(async () => {
    await Promise.all([vertx?.stop(), node?.proc.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function transcript(url: string, transport: TransportName, c: Case): Promise<Event[]> {
    const conn = await Conn.open(url, transport);
    try {
      await c.run(conn);
      await conn.quiet();
    } finally {
      conn.close();
    }
    return conn.events;
  }

  for (const transport of TRANSPORTS) {
    describe(`over ${transport}`, () => {
      for (const c of CASES) {
        it(c.name, async function () {
          if (c.timeoutMs) this.timeout(c.timeoutMs);
          const [fromVertx, fromSwitchboard] = await Promise.all([
            transcript(vertx!.url, transport, c),
            transcript(node!.httpUrl, transport, c),
          ]);
          let v = normalise(fromVertx);
          let s = normalise(fromSwitchboard);
          const ctx: Context = { transport, case: c.name };
          const applied: string[] = [];
          for (const d of DEVIATIONS) {
            const r = d.apply(v, s, ctx);
            if (JSON.stringify(r) !== JSON.stringify({ vertx: v, switchboard: s })) {
              applied.push(d.id);
              used.add(d.id);
            }
            ({ vertx: v, switchboard: s } = r);
          }
          expect(
            s,
            `Switchboard differs from Vert.x (deviations applied: ${applied.join(', ') || 'none'})\n` +
              `Vert.x:\n${show(normalise(fromVertx))}\nSwitchboard:\n${show(normalise(fromSwitchboard))}\n`,
          ).to.deep.equal(v);
          ran++;
        });
      }
    });
  }

  // Mocha runs a suite's own tests before its child suites: this one comes after the transports.
  describe('the allow-list', () => {
    it('is documented: docs/protocol.md names each deviation in "Differences from Vert.x"', () => {
      const doc = readFileSync(join(repoRoot, 'docs/protocol.md'), 'utf8');
      const at = doc.indexOf('## Differences from Vert.x');
      expect(at, 'docs/protocol.md has a "Differences from Vert.x" section').to.be.at.least(0);
      const next = doc.indexOf('\n## ', at + 1);
      const section = doc.slice(at, next < 0 ? undefined : next);
      for (const d of DEVIATIONS) {
        expect(section, `docs/protocol.md documents deviation ${d.id}`).to.include(`\`${d.id}\``);
      }
    });

    it('is exact: every deviation is needed by some case', function () {
      if (ran < total) this.skip(); // only a full run can tell that an entry is not needed
      for (const d of DEVIATIONS) {
        expect(used.has(d.id), `deviation ${d.id} is no longer needed by any case: remove it`).to.equal(true);
      }
    });
  });
});
