import type { ChatMessage, FileRef, OutboxEntry } from '@switchboard/messages-lib';
import { formatTime } from './time-format.js';

/** Types the server serves inline (`GET /files/:id`); everything else is a download. */
const PREVIEW_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

/**
 * DOM for one message. Every piece of user text goes through `textContent` or an attribute, never
 * through HTML parsing: a message such as `<img onerror=…>` is shown as those characters.
 */
export function messageElement(m: ChatMessage, own: boolean, fileUrl: (id: string) => string): HTMLLIElement {
  const li = el('li', own ? 'msg own' : 'msg');
  li.dataset.seq = String(m.seq);
  li.dataset.clientMsgId = m.clientMsgId;
  li.dataset.user = m.user;
  const meta = el('p', 'meta');
  meta.append(text('span', 'author', own ? `${m.user} (you)` : m.user));
  const time = el('time', 'time');
  time.dateTime = new Date(m.ts).toISOString();
  time.textContent = formatTime(m.ts);
  meta.append(time);
  li.append(meta);
  if (m.text !== undefined && m.text !== '') li.append(text('p', 'text', m.text));
  if (m.file) li.append(fileElement(m.file, fileUrl(m.file.id)));
  return li;
}

/** A message the server has not acknowledged yet. */
export function pendingElement(entry: OutboxEntry | LocalPending): HTMLLIElement {
  const li = el('li', 'msg own pending');
  li.dataset.pending = entry.clientMsgId;
  const meta = el('p', 'meta');
  meta.append(text('span', 'author', `${entry.user} (you)`));
  meta.append(text('span', 'sending', 'uploading' in entry ? 'uploading…' : 'sending…'));
  li.append(meta);
  if (entry.text) li.append(text('p', 'text', entry.text));
  const fileName =
    'uploading' in entry ? entry.uploading : entry.file ? (entry.file.name ?? 'file') : undefined;
  if (fileName) li.append(text('p', 'file-name', `📎 ${fileName}`));
  return li;
}

/** An upload in progress: not in the outbox yet (messages-lib queues the message once uploaded). */
export interface LocalPending {
  clientMsgId: string;
  user: string;
  text?: string;
  uploading: string;
}

function fileElement(file: FileRef, url: string): HTMLElement {
  const box = el('div', 'file');
  if (PREVIEW_TYPES.has(file.contentType)) {
    const img = document.createElement('img');
    img.className = 'preview';
    img.src = url;
    img.alt = file.name;
    img.loading = 'lazy';
    box.append(img);
  }
  const link = document.createElement('a');
  link.className = 'download';
  link.href = url;
  link.download = file.name;
  link.textContent = `⬇ ${file.name} (${formatSize(file.size)})`;
  box.append(link);
  return box;
}

export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  return node;
}

function text<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  content: string,
): HTMLElementTagNameMap[K] {
  const node = el(tag, className);
  node.textContent = content;
  return node;
}
