import { existsSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { expect } from 'chai';
import type { Browser } from 'playwright-core';
import type { BusNode } from '../helpers/bus-nodes.js';
import { ClusterFixture } from '../helpers/cluster-fixture.js';
import { pickPorts, waitFor } from '../infra/proc.js';
import { ChatPage, FRONT_INDEX, launchChromium } from './chat-page.js';

/**
 * The web chat in real Chromium, served by two clustered backends (real Hazelcast + FerretDB).
 * Ana's page is served by node A, which listens on a fixed port; Bob's by node B. Node A gets
 * SIGKILLed and a replacement starts on the same port, as a pod comes back behind a stable
 * address: Ana's page must show that it reconnects, then every message it missed, once, in order,
 * and deliver what she typed meanwhile once.
 */
describe('web chat in Chromium on 2 clustered backends', function () {
  this.timeout(120_000);
  const room = `web-${Date.now().toString(36)}`;
  let fx: ClusterFixture;
  let browser: Browser;
  let nodeA: BusNode;
  let nodeB: BusNode;
  let portA: number;
  let ana: ChatPage;
  let bob: ChatPage;

  before(async function () {
    this.timeout(240_000);
    if (!existsSync(FRONT_INDEX)) {
      throw new Error(`${FRONT_INDEX} is missing: build the front first (npm run build -w front)`);
    }
    [portA] = (await pickPorts(1)) as [number];
    fx = await ClusterFixture.start({ nodes: 1 });
    nodeB = fx.nodes[0]!;
    nodeA = await fx.startNode('web-a', { PORT: String(portA) });
    fx.nodes.push(nodeA);
    await fx.waitForNodes([nodeA, nodeB]);
    await fx.waitForSubscribers('chat.send', [nodeA, nodeB]);
    browser = await launchChromium();
    [ana, bob] = await Promise.all([
      ChatPage.open(browser, nodeA.httpUrl, 'ana', room),
      ChatPage.open(browser, nodeB.httpUrl, 'bob', room),
    ]);
  });

  after(async function () {
    this.timeout(60_000);
    await Promise.allSettled([ana?.close(), bob?.close()]);
    await browser?.close().catch(() => {}); // teardown: a browser already gone is fine
    await fx?.stop();
  });

  afterEach(() => {
    expect(ana.pageErrors, 'uncaught errors in ana’s page').to.deep.equal([]);
    expect(bob.pageErrors, 'uncaught errors in bob’s page').to.deep.equal([]);
  });

  it('two pages chat through two backends: own and others’ messages, who is online', async () => {
    await waitFor(
      'both users online on both pages',
      async () => {
        const [a, b] = await Promise.all([ana.users(), bob.users()]);
        return a.length === 2 && b.length === 2;
      },
      15_000,
    );
    expect(await ana.users()).to.have.members(['ana', 'bob']);

    await ana.send('hello from ana');
    await bob.waitForText('hello from ana');
    await bob.send('hi ana, bob here');
    await ana.waitForText('hi ana, bob here');

    for (const page of [ana, bob]) {
      const shown = await page.messages();
      expect(shown.map((m) => m.text)).to.deep.equal(['hello from ana', 'hi ana, bob here']);
      expect(shown.map((m) => m.own)).to.deep.equal(page === ana ? [true, false] : [false, true]);
      expect(shown[1]!.seq).to.be.greaterThan(shown[0]!.seq);
    }
    await waitFor('no pending messages', async () => (await ana.pendingTexts()).length === 0, 10_000);
    await ana.screenshot('chat-desktop.png');
  });

  it('shows an HTML/script message as text and injects no element', async () => {
    const evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold</b>';
    await ana.send(evil);
    await bob.waitForText('<b>bold</b>');
    for (const page of [ana, bob]) {
      const last = (await page.messages()).at(-1)!;
      expect(last.text).to.equal(evil);
      const injected = await page.page
        .locator('#messages b, #messages script, #messages img:not(.preview)')
        .count();
      expect(injected, 'elements created from message text').to.equal(0);
      expect(await page.page.evaluate('typeof window.__pwned')).to.equal('undefined');
    }
    await bob.screenshot('html-as-text.png');
  });

  it('round-trips a file: upload, image preview, download link with the same bytes', async () => {
    const png = samplePng(120, 48);
    await bob.page
      .locator('#composer-file')
      .setInputFiles({ name: 'dot.png', mimeType: 'image/png', buffer: png });
    const preview = ana.page.locator('#messages > li img.preview[alt="dot.png"]');
    await preview.waitFor({ timeout: 20_000 });
    await waitFor(
      'the preview to load',
      async () =>
        (await preview.evaluate(
          (img: { complete: boolean; naturalWidth: number }) => img.complete && img.naturalWidth,
        )) === 120,
      10_000,
    );
    const link = ana.page.locator('#messages > li a.download').filter({ hasText: 'dot.png' });
    expect(await link.getAttribute('download')).to.equal('dot.png');
    const href = await link.evaluate((a: { href: string }) => a.href);
    const res = await ana.context.request.get(String(href), { timeout: 10_000 });
    expect(res.status()).to.equal(200);
    expect(Buffer.compare(await res.body(), png)).to.equal(0);
    await bob.page.locator('#messages > li img.preview[alt="dot.png"]').waitFor({ timeout: 10_000 });
    await waitFor('bob’s upload delivered', async () => (await bob.pendingTexts()).length === 0, 10_000);
    expect(await bob.page.locator('#pending > li').count()).to.equal(0);
    await ana.screenshot('file-preview.png');
  });

  it('a killed backend: the page shows reconnecting, then every missed message once, in order; what was typed offline is sent once', async () => {
    const before = await ana.texts();
    nodeA.proc.kill('SIGKILL');
    await nodeA.proc.exited;
    await ana.waitForState('reconnecting', 15_000);
    expect(await ana.state.textContent()).to.match(/^Reconnecting…/);
    await ana.screenshot('reconnecting.png');

    const missed = Array.from({ length: 5 }, (_, i) => `missed ${i + 1} of 5`);
    for (const text of missed) {
      await bob.send(text);
      await bob.waitForText(text);
    }
    await ana.send('typed while offline');
    await ana.page
      .locator('#pending > li .text')
      .filter({ hasText: 'typed while offline' })
      .waitFor({ timeout: 5_000 });
    expect(await ana.pendingTexts()).to.deep.equal(['typed while offline']);
    await ana.screenshot('pending-offline.png');
    expect(await ana.texts(), 'nothing arrives while disconnected').to.deep.equal(before);

    // The replacement backend on the address the page was served from.
    nodeA = await fx.startNode('web-a2', { PORT: String(portA) });
    fx.nodes.push(nodeA);

    await ana.waitForState('connected', 45_000);
    expect(await ana.state.textContent()).to.equal('Connected · caught up 5 missed messages');
    await ana.waitForText('typed while offline', 20_000);
    await bob.waitForText('typed while offline', 20_000);
    await waitFor('ana’s outbox to drain', async () => (await ana.pendingTexts()).length === 0, 15_000);

    const want = [...before, ...missed, 'typed while offline'];
    for (const page of [ana, bob]) {
      const shown = await page.messages();
      expect(
        shown.map((m) => m.text),
        `${page.name}'s list`,
      ).to.deep.equal(want);
      const seqs = shown.map((m) => m.seq);
      expect(seqs, `${page.name}'s seqs are increasing`).to.deep.equal([...seqs].sort((x, y) => x - y));
      expect(new Set(seqs).size).to.equal(seqs.length);
    }
    await ana.screenshot('caught-up.png');
  });

  it('works at phone width and floods N messages in batches', async () => {
    const phone = await ChatPage.open(browser, nodeB.httpUrl, 'carol', room, { width: 390, height: 844 });
    try {
      const width = await phone.page.evaluate('document.documentElement.scrollWidth');
      expect(width, 'no horizontal scrolling at 390 px').to.be.at.most(390);
      await phone.page.getByText('Load demo').click();
      await phone.page.getByLabel('Number of messages').fill('30');
      await phone.page.getByLabel('Batch size').fill('10');
      await phone.page.getByRole('button', { name: 'Flood' }).click();
      await phone.page
        .locator('#flood-progress')
        .filter({ hasText: 'Flood: 30/30 acknowledged' })
        .waitFor({ timeout: 30_000 });
      await ana.waitForText('#30/30', 20_000);
      const flood = (await ana.texts()).filter((t) => t?.startsWith('flood '));
      // "flood <time in the page's locale> #i/N": the time may hold spaces ("09:48 PM").
      expect(flood.map((t) => t!.replace(/^flood .+ (#\d+\/\d+)$/u, '$1'))).to.deep.equal(
        Array.from({ length: 30 }, (_, i) => `#${i + 1}/30`),
      );
      await phone.screenshot('phone.png');
    } finally {
      await phone.close();
    }
  });
});

/** A valid RGB PNG of the given size (a two-colour gradient), so the preview really decodes. */
function samplePng(width: number, height: number): Buffer {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x++) {
      raw[row + 1 + x * 3] = Math.round((255 * x) / width);
      raw[row + 2 + x * 3] = 90;
      raw[row + 3 + x * 3] = Math.round((255 * y) / height);
    }
  }
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function crc32(buf: Buffer): number {
  let c = ~0;
  for (const byte of buf) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}
