import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The front embeds messages-lib and the protocol from source, so `npm run build -w front` needs no
// prior lib build.
const lib = fileURLToPath(new URL('../messages-lib/src/index.ts', import.meta.url));
const protocol = fileURLToPath(new URL('../protocol/src/index.ts', import.meta.url));
// `npm run dev -w front` proxies the bridge and the files API to a running backend.
const backend = process.env.SWITCHBOARD_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: './',
  resolve: { alias: { '@switchboard/messages-lib': lib, '@switchboard/protocol': protocol } },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022' },
  server: {
    host: '127.0.0.1',
    proxy: {
      '/eventbus': { target: backend, ws: true },
      '/files': { target: backend },
    },
  },
});
