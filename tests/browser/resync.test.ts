import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { Browser } from 'playwright-core';
import { BusNode, type ReplyResult } from '../helpers/bus-nodes.js';
import { pickPorts } from '../infra/proc.js';
import { ChatPage, FRONT_INDEX, launchChromium } from './chat-page.js';

function ok<T>(r: ReplyResult): T {
  expect(r.ok, JSON.stringify(r)).to.equal(true);
  return r.body as T;
}

/**
 * The web chat when the server's store is reset under it: a standalone node on a fixed port, its
 * embedded store wiped and the node restarted. The page must say so with a line and then show the
 * new history, whose seqs start again at 1, instead of silently dropping it.
 */
describe('web chat in Chromium: a store reset under the page', function () {
  this.timeout(120_000);
  let dir: string;
  let node: BusNode | undefined;
  let browser: Browser | undefined;
  let ana: ChatPage | undefined;

  before(async function () {
    if (!existsSync(FRONT_INDEX)) {
      throw new Error(`${FRONT_INDEX} is missing: build the front first (npm run build -w front)`);
    }
    dir = await mkdtemp(join(tmpdir(), 'sb-web-resync-'));
  });

  after(async function () {
    this.timeout(60_000);
    // teardown: a page or browser already gone is fine
    await ana?.close().catch(() => {});
    await browser?.close().catch(() => {});
    await node?.proc.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('shows a line saying the history was reset, then the new messages', async () => {
    const [port] = (await pickPorts(1)) as [number];
    const env = { DATA_DIR: dir, PORT: String(port) };
    node = await BusNode.start('web-resync-1', env);
    browser = await launchChromium();
    ana = await ChatPage.open(browser, node.httpUrl, 'ana', 'general');
    await ana.send('before the reset');
    await ana.waitForText('before the reset');

    await node.proc.stop();
    await rm(dir, { recursive: true, force: true });
    node = await BusNode.start('web-resync-2', env);
    const ack = ok<{ seq: number }>(
      await node.request('chat.send', {
        room: 'general',
        user: 'bob',
        clientMsgId: 'b1',
        text: 'after the reset',
      }),
    );
    expect(ack.seq).to.equal(1);

    await ana.waitForText('after the reset', 30_000);
    const notice = ana.page.locator('#messages > li.notice');
    const lines = await notice.allTextContents();
    expect(lines).to.have.length(1);
    expect(lines[0]).to.match(/message history was reset or restored/);
    const shown = await ana.messages();
    expect(shown.map((m) => m.text)).to.deep.equal(['before the reset', null, 'after the reset']);
    expect(shown.map((m) => m.seq)).to.deep.equal([1, NaN, 1]);
    expect(ana.pageErrors).to.deep.equal([]);
  });
});
