#!/usr/bin/env node
// The probe is compiled TypeScript: build it first with `npx tsc -b messages-lib` (or `npm run build`).
import { existsSync } from 'node:fs';

const cli = new URL('../dist/probe/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('switchboard-probe: messages-lib is not built; run `npx tsc -b messages-lib` first\n');
  process.exit(2);
}
await import(cli.href);
