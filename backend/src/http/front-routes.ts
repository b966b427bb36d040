import { existsSync } from 'node:fs';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

export interface FrontRoutesOptions {
  /** The built web chat (`front/dist`): index.html and hashed assets. */
  dir: string;
}

/**
 * What a page of the web chat may do. Defence in depth behind rendering text as text: even an
 * injected element could not run inline script or talk to another origin.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  'frame-src https://www.youtube-nocookie.com',
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'self'",
].join('; ');

/**
 * Serves the built web chat at `/`. Only the files present at start-up get routes (no catch-all),
 * so the bridge, files API and probes keep their paths whatever the build holds.
 */
export async function frontRoutes(app: FastifyInstance, opts: FrontRoutesOptions): Promise<void> {
  const index = join(opts.dir, 'index.html');
  if (!existsSync(index)) {
    const message = `the web chat is not built: ${index} is missing. Run \`npm run build\` (or set FRONT_DIR to a built front).`;
    app.log.warn({ frontDir: opts.dir }, message);
    app.get('/', async (_req, reply) =>
      reply.code(404).type('text/plain; charset=utf-8').send(`${message}\n`),
    );
    return;
  }
  await app.register(fastifyStatic, {
    root: opts.dir,
    prefix: '/',
    wildcard: false,
    index: 'index.html',
    cacheControl: false,
    setHeaders(res, path) {
      // Vite content-hashes everything under assets/; index.html must be revalidated to pick up a new build.
      const hashed = /[\\/]assets[\\/]/.test(path);
      res.setHeader('cache-control', hashed ? 'public, max-age=31536000, immutable' : 'no-cache');
      res.setHeader('x-content-type-options', 'nosniff');
      if (path.endsWith('.html')) {
        res.setHeader('content-security-policy', CONTENT_SECURITY_POLICY);
        res.setHeader('referrer-policy', 'same-origin');
      }
    },
  });
}
