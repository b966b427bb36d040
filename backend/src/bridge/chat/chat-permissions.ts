import type { PermittedOptions } from '../core/permissions.js';

/** The bridge's default permissions: exactly the chat addresses (docs/protocol.md). */
export const CHAT_BRIDGE_PERMISSIONS: { inbound: PermittedOptions[]; outbound: PermittedOptions[] } = {
  inbound: [
    { address: 'chat.join' },
    { address: 'chat.send' },
    { address: 'chat.history' },
    { address: 'chat.leave' },
  ],
  outbound: [
    { addressRegex: 'chat\\.room\\.[A-Za-z0-9_-]{1,64}' },
    { addressRegex: 'chat\\.presence\\.[A-Za-z0-9_-]{1,64}' },
  ],
};
