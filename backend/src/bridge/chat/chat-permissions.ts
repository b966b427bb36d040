import { CHAT_REQUEST_ADDRESSES, ChatAddressRegex } from '@switchboard/protocol';
import type { PermittedOptions } from '../core/permissions.js';

/** The bridge's default permissions: exactly the chat addresses (docs/protocol.md). */
export const CHAT_BRIDGE_PERMISSIONS: { inbound: PermittedOptions[]; outbound: PermittedOptions[] } = {
  inbound: CHAT_REQUEST_ADDRESSES.map((address) => ({ address })),
  outbound: [{ addressRegex: ChatAddressRegex.room }, { addressRegex: ChatAddressRegex.presence }],
};
