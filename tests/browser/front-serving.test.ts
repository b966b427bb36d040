import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeOnExit } from '../infra/proc.js';
import { FRONT_INDEX } from './chat-page.js';
import { startSingleBackend } from './single-backend.js';

describe('the backend serves the web chat at /', function () {
  this.timeout(60_000);

  it('serves the built front (default FRONT_DIR) with a CSP and cacheable hashed assets', async () => {
    expect(existsSync(FRONT_INDEX), `${FRONT_INDEX} (build the front first)`).to.equal(true);
    const { proc, url } = await startSingleBackend('front-default');
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
    const elsewhere = mkdtempSync(join(tmpdir(), 'sb-no-front-'));
    removeOnExit(elsewhere);
    const missing = join(elsewhere, 'no-front-here');
    const { proc, url } = await startSingleBackend('front-missing', { FRONT_DIR: missing });
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
