/**
 * One real backend (backend/src/main.ts on its embedded defaults, as `npm start` runs it),
 * started from a temp directory so nothing depends on the cwd.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePort, type ManagedProcess, removeOnExit, startProcess } from '../infra/proc.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
// The child runs in another directory, so tsx is named by path rather than resolved from the cwd.
const tsx = pathToFileURL(join(repoRoot, 'node_modules/tsx/dist/loader.mjs')).href;

export interface SingleBackend {
  proc: ManagedProcess;
  url: string;
  dataDir: string;
}

export async function startSingleBackend(
  name: string,
  env: Record<string, string> = {},
): Promise<SingleBackend> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-front-'));
  removeOnExit(dataDir);
  const port = await freePort();
  const proc = startProcess(
    name,
    process.execPath,
    ['--import', tsx, join(repoRoot, 'backend/src/main.ts')],
    {
      cwd: dataDir,
      env: {
        HOST: '127.0.0.1',
        PORT: String(port),
        GRPC_PORT: '0',
        ADMIN_PORT: '0',
        DATA_DIR: dataDir,
        ...env,
      },
    },
  );
  await proc.waitForOutput(`switchboard node listening on http://127.0.0.1:${port}`, 30_000);
  return { proc, url: `http://127.0.0.1:${port}`, dataDir };
}
