import {
  ChatError,
  type ChatClient,
  type ChatMessage,
  type OutboxEntry,
  type Room,
} from '@switchboard/messages-lib';
import type { ConnectionStatus } from './connection-status.js';
import { runFlood } from './flood.js';
import { type LocalPending, messageElement, pendingElement } from './message-view.js';

/** Messages kept in the DOM; older ones scroll away (the library keeps the same default). */
const MAX_RENDERED = 1_000;

export interface ChatElements {
  scroller: HTMLElement;
  messages: HTMLOListElement;
  pending: HTMLOListElement;
  users: HTMLUListElement;
  usersCount: HTMLElement;
  composer: HTMLFormElement;
  text: HTMLTextAreaElement;
  file: HTMLInputElement;
  error: HTMLElement;
  floodForm: HTMLFormElement;
  floodCount: HTMLInputElement;
  floodBatch: HTMLInputElement;
  floodButton: HTMLButtonElement;
  floodProgress: HTMLElement;
}

/**
 * The chat of one joined room: the message list (fed only by the room's `message` events, which
 * come in seq order and once per seq), the unacknowledged messages, presence, and the composer.
 */
/** Shown when the server's message store was reset or restored (messages-lib `resync`). */
export const RESYNC_NOTICE =
  'The server’s message history was reset or restored; the messages below are its history from now on.';

export class ChatView {
  private outboxPending: readonly OutboxEntry[] = [];
  private uploads: (LocalPending & { startedAt: number })[] = [];
  private uploadSeq = 0;
  private readonly disposers: (() => void)[] = [];

  constructor(
    private readonly ui: ChatElements,
    private readonly client: ChatClient,
    private readonly room: Room,
    private readonly user: string,
    private readonly status: ConnectionStatus,
  ) {
    for (const m of room.messages) this.append(m);
    this.renderUsers(room.users);
    this.setPending(room.pending);
    status.setRoom(room.state);
    this.disposers.push(
      room.on('message', (m) => this.append(m)),
      room.on('presence', (users) => this.renderUsers(users)),
      room.on('pending', (entries) => this.setPending(entries)),
      room.on('state', (s) => status.setRoom(s)),
      room.on('synced', () => status.synced()),
      room.on('sendFailed', ({ error }) => this.showError(`A message was refused: ${error.message}`)),
      room.on('error', (e) => this.showError(e.message)),
      room.on('resync', () => this.appendNotice(RESYNC_NOTICE)),
    );
    this.bindComposer();
    this.bindFlood();
    this.scrollToEnd();
  }

  dispose(): void {
    for (const off of this.disposers.splice(0)) off();
  }

  private append(m: ChatMessage): void {
    const stick = this.nearBottom();
    const fileUrl = (id: string) => `${this.client.endpoints.files}/${encodeURIComponent(id)}`;
    this.ui.messages.append(messageElement(m, m.user === this.user, fileUrl));
    while (this.ui.messages.childElementCount > MAX_RENDERED) this.ui.messages.firstElementChild?.remove();
    if (stick || m.user === this.user) this.scrollToEnd();
  }

  /** A line in the message list that is no message: e.g. the history started over below it. */
  private appendNotice(text: string): void {
    const li = document.createElement('li');
    li.className = 'notice';
    li.textContent = text;
    this.ui.messages.append(li);
    this.scrollToEnd();
  }

  private setPending(entries: readonly OutboxEntry[]): void {
    const known = new Set(this.outboxPending.map((e) => e.clientMsgId));
    // An upload turns into an outbox entry once the bytes are stored: drop its placeholder then.
    for (const e of entries) {
      if (e.file && !known.has(e.clientMsgId)) {
        const i = this.uploads.findIndex((u) => u.startedAt <= e.createdAt);
        if (i >= 0) this.uploads.splice(i, 1);
      }
    }
    this.outboxPending = entries;
    this.renderPending();
  }

  private renderPending(): void {
    const stick = this.nearBottom();
    this.ui.pending.replaceChildren(
      ...this.outboxPending.map((e) => pendingElement(e)),
      ...this.uploads.map((u) => pendingElement(u)),
    );
    if (stick) this.scrollToEnd();
  }

  private renderUsers(users: readonly string[]): void {
    const sorted = [...users].sort((a, b) => a.localeCompare(b));
    this.ui.users.replaceChildren(
      ...sorted.map((u) => {
        const li = document.createElement('li');
        li.textContent = u === this.user ? `${u} (you)` : u;
        li.dataset.user = u;
        return li;
      }),
    );
    this.ui.usersCount.textContent = String(users.length);
  }

  private bindComposer(): void {
    const { composer, text, file } = this.ui;
    composer.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.sendText();
    });
    text.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this.sendText();
      }
    });
    file.addEventListener('change', () => {
      const chosen = file.files?.[0];
      file.value = '';
      if (chosen) this.sendFile(chosen);
    });
  }

  private sendText(): void {
    const value = this.ui.text.value;
    if (value.trim() === '') return;
    this.hideError();
    let sending: Promise<unknown>;
    try {
      sending = this.room.send(value);
    } catch (err) {
      this.showError(describe(err));
      return;
    }
    this.ui.text.value = '';
    // The pending list shows it until the ack; a refusal is reported by `sendFailed`.
    sending.catch((err: unknown) => {
      if (!ChatError.is(err, 'RECIPIENT_FAILURE') && !ChatError.is(err, 'CLOSED'))
        this.showError(describe(err));
    });
  }

  private sendFile(file: File): void {
    this.hideError();
    const caption = this.ui.text.value.trim();
    const upload = {
      clientMsgId: `upload-${++this.uploadSeq}`,
      user: this.user,
      uploading: file.name,
      startedAt: Date.now(),
      ...(caption ? { text: caption } : {}),
    };
    if (caption) this.ui.text.value = '';
    this.uploads.push(upload);
    this.renderPending();
    const done = () => {
      const i = this.uploads.indexOf(upload);
      if (i >= 0) this.uploads.splice(i, 1);
      this.renderPending();
    };
    this.room
      .sendFile(file, file.name, file.type || 'application/octet-stream', caption ? { text: caption } : {})
      .then(done, (err: unknown) => {
        done();
        this.showError(`Could not send ${file.name}: ${describe(err)}`);
      });
  }

  private bindFlood(): void {
    const { floodForm, floodCount, floodBatch, floodButton, floodProgress } = this.ui;
    floodForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const count = clampInt(floodCount.value, 1, 5_000, 100);
      const batch = clampInt(floodBatch.value, 1, 500, 20);
      floodButton.disabled = true;
      floodProgress.textContent = `Flood: 0/${count} acknowledged`;
      runFlood(this.room, count, batch, (acked, failed) => {
        floodProgress.textContent =
          `Flood: ${acked}/${count} acknowledged` + (failed > 0 ? `, ${failed} refused` : '');
      })
        .catch((err: unknown) => this.showError(`Flood stopped: ${describe(err)}`))
        .finally(() => {
          floodButton.disabled = false;
        });
    });
  }

  private showError(message: string): void {
    this.ui.error.textContent = message;
    this.ui.error.hidden = false;
  }

  private hideError(): void {
    this.ui.error.hidden = true;
    this.ui.error.textContent = '';
  }

  private nearBottom(): boolean {
    const s = this.ui.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  private scrollToEnd(): void {
    this.ui.scroller.scrollTop = this.ui.scroller.scrollHeight;
  }
}

export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function clampInt(value: string, min: number, max: number, fallback: number): number {
  const n = Number.parseInt(value, 10);
  if (!Number.isFinite(n)) return fallback;
  return Math.min(max, Math.max(min, n));
}
