import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePort, removeOnExit, startProcess } from '../infra/proc.js';
import { FRONT_INDEX } from './chat-page.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
// The child runs in another directory, so tsx is named by path rather than resolved from the cwd.
const tsx = pathToFileURL(join(repoRoot, 'node_modules/tsx/dist/loader.mjs')).href;
const dataDir = mkdtempSync(join(tmpdir(), 'sb-front-'));
removeOnExit(dataDir);

/** The real main.ts, started from a directory other than the repo's: FRONT_DIR must not depend on the cwd. */
async function startBackend(name: string, env: Record<string, string> = {}) {
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
  return { proc, url: `http://127.0.0.1:${port}` };
}

describe('the backend serves the web chat at /', function () {
  this.timeout(60_000);

  it('serves the built front (default FRONT_DIR) with a CSP and cacheable hashed assets', async () => {
    expect(existsSync(FRONT_INDEX), `${FRONT_INDEX} (build the front first)`).to.equal(true);
    const { proc, url } = await startBackend('front-default');
    try {
      const res = await fetch(`${url}/`);
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.match(/^text\/html/);
      expect(res.headers.get('content-security-policy')).to.include("script-src 'self'");
      expect(res.headers.get('cache-control')).to.equal('no-cache');
      const html = await res.text();
      expect(html).to.equal(readFileSync(FRONT_INDEX, 'utf8'));
      const asset = html.match(/src="\.\/(assets\/[^"]+\.js)"/)?.[1];
      expect(asset, 'a script under assets/').to.be.a('string');
      const js = await fetch(`${url}/${asset}`);
      expect(js.status).to.equal(200);
      expect(js.headers.get('cache-control')).to.include('immutable');
      // The front's routes leave the other endpoints alone.
      expect((await fetch(`${url}/health`)).status).to.equal(200);
      expect((await fetch(`${url}/files/nope`)).status).to.be.oneOf([400, 404]);
      expect((await fetch(`${url}/no-such-page`)).status).to.equal(404);
    } finally {
      await proc.stop();
    }
  });

  it('without a built front: warns at start-up and answers / with 404 naming npm run build', async () => {
    const missing = join(dataDir, 'no-front-here');
    const { proc, url } = await startBackend('front-missing', { FRONT_DIR: missing });
    try {
      expect(proc.output()).to.include(`${missing}/index.html is missing`);
      const res = await fetch(`${url}/`);
      expect(res.status).to.equal(404);
      expect(await res.text()).to.include('npm run build');
      expect((await fetch(`${url}/ready`)).status).to.equal(200);
    } finally {
      await proc.stop();
    }
  });
});
