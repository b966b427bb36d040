/**
 * Configuration a careless operator can get wrong (issue 19, item 13): a clear error, no crash
 * and no secret in the output; the start-up log says where the node really listens.
 */
import { expect } from 'chai';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from '../../backend/src/config/config.js';
import { startProcess } from '../infra/proc.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

describe('abuse: configuration mistakes', function () {
  this.timeout(60_000);

  it('STORE=mongodb without MONGO_URL names the missing variable (exit 78), not a TypeError', async () => {
    expect(() => loadConfig({ STORE: 'mongodb' })).to.throw(
      ConfigError,
      /MONGO_URL: required when STORE=mongodb/,
    );
    const proc = startProcess('cfg-mongo', process.execPath, ['--import', 'tsx', 'backend/src/main.ts'], {
      cwd: repoRoot,
      env: { STORE: 'mongodb', MONGO_URL: undefined, PORT: '0', ADMIN_PORT: '0', GRPC_PORT: '0' },
    });
    const exit = await proc.exited;
    expect(exit.code).to.equal(78);
    expect(proc.output()).to.contain('MONGO_URL: required when STORE=mongodb');
    expect(proc.output()).to.not.contain('Cannot read properties');
  });

  it('a too-short AUTH_TOKEN_SECRET is refused without printing it', () => {
    const secret = 'hunter2-is-my-password';
    let message = '';
    try {
      loadConfig({ AUTH_TOKEN_SECRET: secret });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).to.contain('AUTH_TOKEN_SECRET: at least 32 characters');
    expect(message).to.not.contain(secret);
    expect(message).to.contain(`got ${secret.length} characters, not shown`);
  });

  it('says when it binds every interface, and puts /prestop and /metrics on the admin port', async () => {
    const proc = startProcess('cfg-host', process.execPath, ['--import', 'tsx', 'backend/src/main.ts'], {
      cwd: repoRoot,
      env: { HOST: '0.0.0.0', PORT: '0', ADMIN_PORT: '0', ADMIN_HOST: '127.0.0.1', GRPC_PORT: '0' },
    });
    try {
      const line = await proc.waitForOutput(/switchboard node listening on [^"]+/, 30_000);
      expect(String((line as RegExpMatchArray)[0])).to.match(/\(bound to 0\.0\.0\.0: every interface\)$/);
      const admin = await proc.waitForOutput(/admin \S+ \S+ listening on [^"]+/, 30_000);
      expect(String((admin as RegExpMatchArray)[0])).to.match(/listening on 127\.0\.0\.1:\d+$/);
    } finally {
      await proc.stop();
    }
  });
});
