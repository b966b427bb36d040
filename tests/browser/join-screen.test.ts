import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import {
  DEFAULT_CHAT_LIMITS,
  ROOM_NAME_MAX_LENGTH,
  ROOM_NAME_RULE,
  ROOM_NAME_SOURCE,
  USER_NAME_MAX_LENGTH,
} from '@switchboard/protocol';
import type { Browser, Page, Request } from 'playwright-core';
import { FRONT_INDEX, SCREENSHOT_DIR, launchChromium } from './chat-page.js';
import { type SingleBackend, startSingleBackend } from './single-backend.js';

/**
 * What a newcomer sees first: the join screen of the web chat (real Chromium, one real backend on
 * its embedded defaults). Before joining only the join card is there, centred, at desktop and
 * phone width; nothing of the chat can be sent; and once joined, every time on the page is written
 * one way, in the browser's locale.
 */
describe('web chat: the join screen and the time format, in Chromium', function () {
  this.timeout(60_000);
  let backend: SingleBackend;
  let browser: Browser;

  before(async function () {
    this.timeout(120_000);
    if (!existsSync(FRONT_INDEX)) {
      throw new Error(`${FRONT_INDEX} is missing: build the front first (npm run build -w front)`);
    }
    backend = await startSingleBackend('join-screen');
    browser = await launchChromium();
  });

  after(async function () {
    this.timeout(30_000);
    await browser?.close().catch(() => {}); // teardown: a browser already gone is fine
    await backend?.proc.stop();
  });

  async function openJoinScreen(
    viewport: { width: number; height: number },
    query = '',
  ): Promise<{ page: Page; errors: string[]; close: () => Promise<void> }> {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`${backend.url}/${query}`, { timeout: 15_000 });
    await page.getByLabel('Your name').waitFor({ state: 'visible', timeout: 10_000 });
    return { page, errors, close: () => context.close() };
  }

  for (const viewport of [
    { width: 1280, height: 800 },
    { width: 390, height: 844 },
  ]) {
    it(`at ${viewport.width} px shows only the join card, centred, without horizontal scrolling`, async () => {
      const { page, errors, close } = await openJoinScreen(viewport);
      try {
        mkdirSync(SCREENSHOT_DIR, { recursive: true });
        await page.screenshot({ path: join(SCREENSHOT_DIR, `join-${viewport.width}.png`), fullPage: true });

        expect(await page.locator('#chat-view').isVisible(), 'the chat view is rendered').to.equal(false);
        for (const [what, locator] of [
          ['the message box', page.getByLabel('Message', { exact: true })],
          ['Send', page.getByRole('button', { name: 'Send' })],
          ['Attach file', page.getByText('Attach file')],
          ['Online', page.getByRole('heading', { name: /^Online/ })],
          ['Load demo', page.getByText('Load demo')],
        ] as const) {
          expect(await locator.isVisible(), `${what} is visible before joining`).to.equal(false);
        }
        expect(await page.getByRole('button', { name: 'Join' }).isVisible()).to.equal(true);

        const { scrollWidth, innerWidth } = (await page.evaluate(
          '({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth })',
        )) as { scrollWidth: number; innerWidth: number };
        expect(innerWidth).to.equal(viewport.width);
        expect(scrollWidth, 'page width (horizontal scrolling)').to.be.at.most(viewport.width);

        const card = await page.locator('#join-view').boundingBox();
        expect(card, 'the join card').to.not.equal(null);
        const left = card!.x;
        const right = viewport.width - (card!.x + card!.width);
        expect(left, 'space left of the join card').to.be.greaterThan(0);
        expect(
          Math.abs(left - right),
          `join card centred (left ${left} px, right ${right} px)`,
        ).to.be.at.most(1);
        expect(errors, 'uncaught page errors').to.deep.equal([]);
      } finally {
        await close();
      }
    });
  }

  it('the forms hold the protocol’s limits: name and room length, the room rule, the text length', async () => {
    const { page, close } = await openJoinScreen({ width: 1280, height: 800 });
    try {
      const limits = (await page.evaluate(`({
        name: document.getElementById('join-name').maxLength,
        room: document.getElementById('join-room').maxLength,
        pattern: document.getElementById('join-room').pattern,
        hint: document.getElementById('join-room-hint').textContent,
        text: document.getElementById('composer-text').maxLength,
      })`)) as Record<string, unknown>;
      expect(limits).to.deep.equal({
        name: USER_NAME_MAX_LENGTH,
        room: ROOM_NAME_MAX_LENGTH,
        pattern: ROOM_NAME_SOURCE,
        hint: ROOM_NAME_RULE,
        text: DEFAULT_CHAT_LIMITS.maxTextLength,
      });
      // The browser applies the rule: a name with a dot is not a valid room.
      await page.locator('#join-room').fill('a.b');
      expect(await page.evaluate(`document.getElementById('join-room').validity.patternMismatch`)).to.equal(
        true,
      );
    } finally {
      await close();
    }
  });

  it('before joining, Send (and Flood) submit nothing: no reload, no text in the URL', async () => {
    const { page, errors, close } = await openJoinScreen({ width: 1280, height: 800 }, '?room=lobby');
    try {
      const documents: string[] = [];
      page.on('request', (req: Request) => {
        if (req.isNavigationRequest()) documents.push(req.url());
      });
      const before = page.url();
      await page.evaluate('window.__samePage = true');
      // Not visible, so a user cannot click it; even a script's click on it must submit nothing.
      await page.evaluate(`document.getElementById('composer-text').value = 'secret words'`);
      await page.locator('#send-button').dispatchEvent('click');
      await page.evaluate(`document.getElementById('composer').requestSubmit()`);
      await page.locator('#flood-button').dispatchEvent('click');
      // A browser form submission navigates asynchronously: give one a bounded chance to start.
      await page.evaluate('new Promise((r) => setTimeout(r, 500))');

      expect(documents, 'pages requested after the submit').to.deep.equal([]);
      expect(page.url()).to.equal(before);
      expect(page.url()).to.not.include('secret');
      expect(await page.evaluate('window.__samePage'), 'the page was not reloaded').to.equal(true);
      expect(await page.getByLabel('Your name').isVisible()).to.equal(true);
      expect(errors, 'uncaught page errors').to.deep.equal([]);
    } finally {
      await close();
    }
  });

  for (const { locale, pattern } of [
    { locale: 'en-US', pattern: /^\d{2}:\d{2}\s(AM|PM)$/u },
    { locale: 'de-DE', pattern: /^\d{2}:\d{2}$/ },
  ]) {
    it(`writes every time one way, in the browser's locale (${locale})`, async () => {
      const context = await browser.newContext({ locale, viewport: { width: 1280, height: 800 } });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(err.message));
      try {
        await page.goto(`${backend.url}/?room=times-${locale}`, { timeout: 15_000 });
        await page.getByLabel('Your name').fill(`reader-${locale}`);
        await page.getByLabel('Your name').press('Enter');
        await page.locator('#conn-state[data-state="connected"]').waitFor({ timeout: 20_000 });
        await page.getByText('Load demo').click();
        await page.getByLabel('Number of messages').fill('2');
        await page.getByLabel('Batch size').fill('2');
        await page.getByRole('button', { name: 'Flood' }).click();
        await page
          .locator('#flood-progress')
          .filter({ hasText: 'Flood: 2/2 acknowledged' })
          .waitFor({ timeout: 20_000 });
        await page.locator('#messages > li').nth(1).waitFor({ timeout: 10_000 });

        const headers = await page.locator('#messages > li time').allTextContents();
        const texts = await page.locator('#messages > li .text').allTextContents();
        expect(headers).to.have.length(2);
        for (const time of headers) expect(time, 'a message header’s time').to.match(pattern);
        expect(texts).to.have.length(2);
        for (const text of texts) {
          const stamp = text.match(/^flood (.+) #\d+\/2$/u)?.[1];
          expect(stamp, `the time in “${text}”`).to.match(pattern);
        }
        expect(errors, 'uncaught page errors').to.deep.equal([]);
        mkdirSync(SCREENSHOT_DIR, { recursive: true });
        await page.screenshot({ path: join(SCREENSHOT_DIR, `times-${locale}.png`) });
      } finally {
        await context.close();
      }
    });
  }
});
