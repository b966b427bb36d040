import {
  Chat,
  type HistoryReply,
  type HistoryRequest,
  type JoinRequest,
  type LeaveReply,
  type LeaveRequest,
  type SendAck,
  type SendRequest,
} from '@switchboard/protocol';
import type { BusChannel } from './bus-channel.js';
import type { RefusalError } from './pending-requests.js';
import type { Refused } from './refusal.js';
import type { JoinResult, RoomFeed, RoomTransport } from './room-types.js';

/**
 * A room over the WebSocket client's event bus: requests to the chat addresses, and the live feed
 * as registrations of `chat.room.<room>` and `chat.presence.<room>` on the current socket.
 */
export class BusRoomTransport implements RoomTransport {
  readonly authoritativeFeed = false;
  private readonly roomAddress: string;
  private readonly presenceAddress: string;

  constructor(
    private readonly bus: Pick<BusChannel, 'request' | 'register' | 'unregister' | 'route' | 'serialize'>,
    room: string,
    readonly isOpen: () => boolean,
  ) {
    this.roomAddress = Chat.room(room);
    this.presenceAddress = Chat.presence(room);
  }

  join(body: JoinRequest, refusal: RefusalError, onRefused: Refused): Promise<JoinResult> {
    // Register first: whatever is published from now on reaches us; the join covers the rest.
    // In token mode the bridge refuses all three for a room the token does not grant. The bridge
    // answers a socket's frames in order: once chat.join is answered, so are both registrations.
    this.bus.register(this.roomAddress, onRefused);
    this.bus.register(this.presenceAddress, onRefused);
    // The wire boundary: the reply is the address's by the protocol, not by a check here.
    return this.bus.request<JoinResult>(Chat.join, body, refusal);
  }

  send(body: SendRequest): Promise<SendAck> {
    return this.bus.request<SendAck>(Chat.send, body);
  }

  history(body: HistoryRequest): Promise<HistoryReply> {
    return this.bus.request<HistoryReply>(Chat.history, body);
  }

  leave(body: LeaveRequest): Promise<LeaveReply> {
    return this.bus.request<LeaveReply>(Chat.leave, body);
  }

  listen(feed: RoomFeed | undefined): void {
    this.bus.route(this.roomAddress, feed && ((body) => feed.message(body)));
    this.bus.route(this.presenceAddress, feed && ((body) => feed.presence(body)));
  }

  stopFeed(): void {
    this.bus.unregister(this.roomAddress);
    this.bus.unregister(this.presenceAddress);
  }

  checkFrame(frame: object): void {
    this.bus.serialize(frame);
  }
}
