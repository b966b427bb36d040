import { Chat, ChatHeader } from '@switchboard/protocol';
import type { BridgeEventType, BridgeHook, BridgeSocketInfo } from '../core/hook.js';
import type { EventBus } from '../../eventbus/types.js';

/**
 * Any suffix, not only a valid room name (ROOM_NAME_SOURCE): whatever follows is checked against
 * the token's rooms, so an address the room rule would not match is refused too, not let through.
 */
const ROOM_ADDRESS = /^chat\.(?:room|presence)\.(.+)$/;
const JOINED = 'chat.joined';

function joined(socket: BridgeSocketInfo): Map<string, string> {
  let rooms = socket.attributes.get(JOINED) as Map<string, string> | undefined;
  if (!rooms) socket.attributes.set(JOINED, (rooms = new Map()));
  return rooms;
}

/** The events `chatBridgePolicy` acts on (BridgeConfig.hookEvents): not RECEIVE, the per-delivery one. */
export const CHAT_POLICY_EVENTS: readonly BridgeEventType[] = [
  'SEND',
  'PUBLISH',
  'REGISTER',
  'SOCKET_CLOSED',
];

/**
 * The chat service's rules at the bridge, composed in main.ts so that neither the bridge nor the
 * chat service imports the other:
 * - with a verified token the user of every chat request is the token's subject, whatever the
 *   body says, and rooms outside the token's `rooms` claim are refused;
 * - a socket that closes leaves every room it joined.
 */
export function chatBridgePolicy(bus: EventBus): BridgeHook {
  return (event) => {
    const { socket } = event;
    const principal = socket.principal;
    switch (event.type) {
      case 'SEND':
      case 'PUBLISH': {
        const frame = event.frame!;
        if (!frame.address.startsWith('chat.')) return true;
        const body = frame.body;
        // Not an object: let the chat service answer its 400.
        if (typeof body !== 'object' || body === null || Array.isArray(body)) return true;
        const next = { ...(body as Record<string, unknown>) };
        // History has no user; the other chat requests act for the token's subject.
        if (principal && frame.address !== Chat.history) next.user = principal.user;
        const room = next.room;
        if (principal?.rooms && typeof room === 'string' && !principal.rooms.has(room))
          return 'access_denied';
        frame.body = next;
        if (typeof room === 'string' && typeof next.user === 'string') {
          if (frame.address === Chat.join) joined(socket).set(room, next.user);
          if (frame.address === Chat.leave) joined(socket).delete(room);
        }
        return true;
      }
      case 'REGISTER': {
        const room = ROOM_ADDRESS.exec(event.frame!.address)?.[1];
        if (room !== undefined && principal?.rooms && !principal.rooms.has(room)) return 'access_denied';
        return true;
      }
      case 'SOCKET_CLOSED': {
        const headers = { [ChatHeader.session]: socket.session, [ChatHeader.node]: socket.node };
        for (const [room, user] of joined(socket)) {
          try {
            bus.send(Chat.leave, { room, user }, { headers });
          } catch {
            // the bus is closing with the node: presence goes with the node's lease
          }
        }
        return true;
      }
      default:
        return true;
    }
  };
}
