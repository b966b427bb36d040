import { ChatClient, ChatError, LocalStorageOutbox } from '@switchboard/messages-lib';
import {
  DEFAULT_CHAT_LIMITS,
  ROOM_NAME_MAX_LENGTH,
  ROOM_NAME_RULE,
  ROOM_NAME_SOURCE,
  USER_NAME_MAX_LENGTH,
} from '@switchboard/protocol';
import { ChatView, describe } from './chat-view.js';
import { ConnectionStatus } from './connection-status.js';
import { checkName, checkRoom, readParams } from './params.js';
import './styles.css';

const NAME_KEY = 'switchboard.name';

function byId<T extends HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`index.html lacks #${id}`);
  return node as T;
}

const params = readParams(location.search);
const status = new ConnectionStatus(byId('conn-state'));
const joinView = byId<HTMLElement>('join-view');
const chatView = byId<HTMLElement>('chat-view');
const joinForm = byId<HTMLFormElement>('join-form');
const joinName = byId<HTMLInputElement>('join-name');
const joinRoom = byId<HTMLInputElement>('join-room');
const joinButton = byId<HTMLButtonElement>('join-button');
const joinError = byId<HTMLElement>('join-error');
const roomTitle = byId<HTMLElement>('room-title');

// The forms' limits are the protocol's (one definition, shared with the server's checks).
joinName.maxLength = USER_NAME_MAX_LENGTH;
joinRoom.maxLength = ROOM_NAME_MAX_LENGTH;
joinRoom.pattern = ROOM_NAME_SOURCE;
byId<HTMLElement>('join-room-hint').textContent = ROOM_NAME_RULE;
byId<HTMLTextAreaElement>('composer-text').maxLength = DEFAULT_CHAT_LIMITS.maxTextLength;

// Until a room is joined there is nothing to send to: the chat view's forms (message box, flood)
// must never be submitted by the browser itself, which would reload the page with their text in
// the URL. ChatView handles their submissions once joined.
for (const form of chatView.querySelectorAll('form')) {
  form.addEventListener('submit', (ev) => ev.preventDefault());
}

joinName.value = params.name ?? storedName() ?? '';
joinRoom.value = params.room ?? 'general';
(joinName.value ? joinRoom : joinName).focus();
if (params.ytid) showVideo(params.ytid);

joinForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const name = joinName.value.trim();
  const room = joinRoom.value.trim();
  const problem = checkName(name) ?? checkRoom(room);
  if (problem) {
    showJoinError(problem);
    return;
  }
  void join(name, room).catch((err: unknown) => {
    joinButton.disabled = false;
    showJoinError(`Could not join: ${describe(err)}`);
  });
});

async function join(user: string, roomName: string): Promise<void> {
  joinError.hidden = true;
  joinButton.disabled = true;
  // Same origin as the page (a path prefix is kept), so the page works behind any proxy.
  const client = new ChatClient({ url: '.', user, outbox: new LocalStorageOutbox('switchboard.outbox') });
  client.on('state', (s) => status.setConnection(s));
  client.on('reconnecting', ({ attempt }) => status.setReconnectAttempt(attempt));
  client.on('catchingUp', ({ room, missed }) => {
    if (room === roomName) status.catchingUp(missed);
  });
  client.on('error', (e) => console.warn('switchboard:', e.failureType, e.code, e.message));
  try {
    await client.connect();
    const room = await client.join(roomName);
    storeName(user);
    const url = new URL(location.href);
    url.searchParams.set('room', roomName);
    history.replaceState(null, '', url);
    document.title = `#${roomName} · Switchboard`;
    roomTitle.textContent = `#${roomName}`;
    roomTitle.hidden = false;
    joinView.hidden = true;
    chatView.hidden = false;
    new ChatView(
      {
        scroller: byId('scroller'),
        messages: byId('messages'),
        pending: byId('pending'),
        users: byId('users'),
        usersCount: byId('users-count'),
        composer: byId('composer'),
        text: byId('composer-text'),
        file: byId('composer-file'),
        error: byId('composer-error'),
        floodForm: byId('flood-form'),
        floodCount: byId('flood-count'),
        floodBatch: byId('flood-batch'),
        floodButton: byId('flood-button'),
        floodProgress: byId('flood-progress'),
      },
      client,
      room,
      user,
      status,
    );
    byId<HTMLTextAreaElement>('composer-text').focus();
  } catch (err) {
    await client.close().catch(() => {}); // the join's failure is the one to show
    joinButton.disabled = false;
    showJoinError(
      ChatError.is(err, 'RECIPIENT_FAILURE', 409)
        ? `The name “${user}” is taken in #${roomName}. Pick another one.`
        : `Could not join: ${describe(err)}`,
    );
  }
}

function showJoinError(message: string): void {
  joinError.textContent = message;
  joinError.hidden = false;
}

function showVideo(ytid: string): void {
  const box = byId<HTMLElement>('video');
  const frame = document.createElement('iframe');
  // ytid passed readParams' pattern, so it cannot leave the path segment.
  frame.src = `https://www.youtube-nocookie.com/embed/${ytid}?autoplay=1&mute=1`;
  frame.title = 'Live video';
  frame.allow = 'autoplay; encrypted-media; picture-in-picture';
  frame.referrerPolicy = 'strict-origin-when-cross-origin';
  frame.allowFullscreen = true;
  box.append(frame);
  box.hidden = false;
  document.body.classList.add('with-video');
}

function storedName(): string | undefined {
  try {
    return localStorage.getItem(NAME_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

function storeName(name: string): void {
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    // no storage (private mode, quota): the name is just not remembered
  }
}
