/**
 * Real Chromium (Debian's package, installed by the test command) driven by playwright-core, and
 * a page object for the web chat that reads only what a user sees: the DOM.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const SCREENSHOT_DIR = join(repoRoot, 'tests/artifacts/screenshots');
export const FRONT_INDEX = join(repoRoot, 'front/dist/index.html');
const CHROMIUM = '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: run \`node --import tsx tests/infra/debian.ts install chromium\` (npm test does)`,
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Without the background-networking flags Chromium keeps dialling Google on a closed network.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** One message as the list shows it. */
export interface ShownMessage {
  seq: number;
  user: string;
  own: boolean;
  text: string | null;
}

export class ChatPage {
  /** Uncaught exceptions of the page: a working page has none. */
  readonly pageErrors: string[] = [];

  private constructor(
    readonly name: string,
    readonly context: BrowserContext,
    readonly page: Page,
  ) {
    page.on('pageerror', (err) => this.pageErrors.push(err.message));
  }

  /** A fresh browser profile (its own localStorage) on `baseUrl`, joined to `room` as `name`. */
  static async open(
    browser: Browser,
    baseUrl: string,
    name: string,
    room: string,
    viewport = { width: 1100, height: 720 },
  ): Promise<ChatPage> {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    const chat = new ChatPage(name, context, page);
    await page.goto(`${baseUrl}/?room=${encodeURIComponent(room)}`, { timeout: 15_000 });
    // Keyboard only: the room comes from the URL, the name is typed, Enter joins.
    const nameField = page.getByLabel('Your name');
    await nameField.waitFor({ state: 'visible', timeout: 10_000 });
    await nameField.fill(name);
    await nameField.press('Enter');
    const refused = page.locator('#join-error');
    await page
      .locator('#chat-view:not([hidden]), #join-error:not([hidden])')
      .first()
      .waitFor({ state: 'visible', timeout: 20_000 });
    if (await refused.isVisible()) throw new Error(`${name} could not join: ${await refused.textContent()}`);
    await chat.waitForState('connected', 20_000);
    return chat;
  }

  get state(): Locator {
    return this.page.locator('#conn-state');
  }

  async waitForState(kind: string, timeoutMs: number): Promise<void> {
    await this.page.locator(`#conn-state[data-state="${kind}"]`).waitFor({ timeout: timeoutMs });
  }

  /** Types into the message box and presses Enter, as a user does. */
  async send(text: string): Promise<void> {
    const box = this.page.getByLabel('Message', { exact: true });
    await box.fill(text);
    await box.press('Enter');
  }

  /** The message list, top to bottom (pending messages are not in it). */
  messages(): Promise<ShownMessage[]> {
    return this.page.evaluate(`[...document.querySelectorAll('#messages > li')].map((li) => ({
      seq: Number(li.dataset.seq),
      user: li.dataset.user,
      own: li.classList.contains('own'),
      text: li.querySelector('.text')?.textContent ?? null,
    }))`);
  }

  async texts(): Promise<(string | null)[]> {
    return (await this.messages()).map((m) => m.text);
  }

  /** Texts of the messages shown as not yet delivered. */
  pendingTexts(): Promise<string[]> {
    return this.page.locator('#pending > li .text').allTextContents();
  }

  /** Waits until the list shows a message with exactly this text (bounded). */
  async waitForText(text: string, timeoutMs = 15_000): Promise<void> {
    await this.page
      .locator('#messages > li .text')
      .filter({ hasText: text })
      .first()
      .waitFor({ timeout: timeoutMs });
  }

  users(): Promise<string[]> {
    return this.page.evaluate(`[...document.querySelectorAll('#users > li')].map((li) => li.dataset.user)`);
  }

  async screenshot(file: string): Promise<string> {
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const path = join(SCREENSHOT_DIR, file);
    await this.page.screenshot({ path });
    return path;
  }

  close(): Promise<void> {
    return this.context.close();
  }
}
