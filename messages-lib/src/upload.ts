import type { ChatClientOptions, FetchLike, FetchResponseLike } from './client-options.js';
import { ChatError } from './errors.js';
import type { FileRef } from './types.js';

/**
 * Uploads a file to the server's `POST /files` (multipart, part `file`), with the token as a
 * bearer, and returns the server's reference to it. `options` are read at each upload.
 */
export async function uploadFile(
  options: Pick<ChatClientOptions, 'fetch' | 'token'>,
  url: () => string,
  data: Blob | ArrayBuffer | ArrayBufferView,
  name: string,
  contentType?: string,
): Promise<FileRef> {
  const fetchImpl = options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
  if (!fetchImpl) throw new ChatError('CONFIG', 'sendFile needs fetch: pass `fetch` in the options');
  if (typeof FormData === 'undefined' || typeof Blob === 'undefined') {
    throw new ChatError('CONFIG', 'sendFile needs FormData and Blob (Node ≥ 18 or a browser)');
  }
  if (typeof name !== 'string' || name.length === 0) throw new ChatError('INVALID', 'file name: required');
  const form = new FormData();
  form.append('file', toBlob(data, contentType), name);
  const headers: Record<string, string> = {};
  const token = typeof options.token === 'function' ? await options.token() : options.token;
  if (token) headers.authorization = `Bearer ${token}`;
  let res: FetchResponseLike;
  try {
    res = await fetchImpl(url(), { method: 'POST', body: form, headers });
  } catch (err) {
    throw new ChatError('UPLOAD', `upload failed: ${String(err)}`, { code: 0, cause: err });
  }
  let payload: unknown;
  try {
    payload = await res.json();
  } catch {
    payload = undefined;
  }
  if (!res.ok) {
    const p = (payload ?? {}) as { error?: unknown; message?: unknown };
    throw new ChatError(
      'UPLOAD',
      `upload refused (HTTP ${res.status})${typeof p.message === 'string' ? `: ${p.message}` : ''}`,
      { code: res.status, ...(typeof p.error === 'string' ? { reason: p.error } : {}) },
    );
  }
  const ref = payload as Partial<FileRef> | undefined;
  if (!ref || typeof ref.id !== 'string') {
    throw new ChatError('UPLOAD', 'upload: the server answered without a file id', { code: res.status });
  }
  return ref as FileRef;
}

function toBlob(data: Blob | ArrayBuffer | ArrayBufferView, contentType: string | undefined): Blob {
  const type = contentType ?? '';
  if (typeof Blob !== 'undefined' && data instanceof Blob) {
    return contentType === undefined || data.type === contentType ? data : new Blob([data], { type });
  }
  if (data instanceof ArrayBuffer) return new Blob([data], { type });
  if (ArrayBuffer.isView(data)) {
    // A copy: the view may be over a SharedArrayBuffer or a larger buffer (Node's Buffer pool).
    const bytes = new Uint8Array(data.byteLength);
    bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return new Blob([bytes], { type });
  }
  throw new ChatError('INVALID', 'sendFile: expected a Blob, an ArrayBuffer or a typed array');
}
