export { MAX_ADDRESS_LENGTH, validateAddress } from './address.js';
export { bytesCodec, CodecRegistry, jsonCodec, type MessageCodec } from './codecs.js';
export {
  ClusteredEventBus,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_REQUEST_TIMEOUT_MS,
  type BusLogger,
  type EventBusOptions,
} from './event-bus.js';
export {
  EventBusError,
  type EventBusErrorCode,
  ReplyException,
  ReplyFailure,
  type ReplyFailureType,
} from './failures.js';
export type { NodeTransport, WireMessage } from './transport.js';
export type { DeliveryOptions, EventBus, Handler, Headers, Message, MessageConsumer } from './types.js';
