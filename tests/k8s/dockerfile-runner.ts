/**
 * Runs a Dockerfile's stages on this machine, without a container engine: each stage gets a
 * directory standing in for its filesystem root; WORKDIR, ENV, COPY (from the build context,
 * filtered by .dockerignore, or `--from=<stage>`) and RUN (`sh -c`, in the stage's WORKDIR) are
 * carried out in order. `FROM` images and `USER` cannot be reproduced here: the base image's Node
 * is this machine's, and steps run as the current user. The last stage's CMD (exec form) is
 * returned for the caller to start, so a wrong CMD fails the test that runs it.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, posix } from 'node:path';
import { startProcess } from '../infra/proc.js';

export interface Instruction {
  op: string;
  args: string;
  line: number;
}

export interface StageResult {
  name: string;
  root: string;
  workdir: string;
  env: Record<string, string>;
  cmd: string[] | undefined;
  user: string | undefined;
  exposed: number[];
}

/** Instructions with line continuations joined and comments dropped. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    if (!pending && (line.trim() === '' || line.trim().startsWith('#'))) return;
    if (!pending) start = i + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\S+)\s+([\s\S]*)$/.exec(full);
    if (!m) throw new Error(`Dockerfile line ${start}: cannot parse ${JSON.stringify(full)}`);
    out.push({ op: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
  });
  return out;
}

/** A matcher for .dockerignore patterns (`name`, `dir/x`, `*.md`, `**\/name`), relative to the context. */
export function dockerignore(patterns: string[]): (path: string) => boolean {
  const regexes = patterns
    .map((p) => p.trim())
    .filter((p) => p && !p.startsWith('#'))
    .map((p) => {
      if (p.startsWith('!')) throw new Error(`.dockerignore exceptions are not supported here: ${p}`);
      const body = p
        .replace(/^\.\//, '')
        .split(/(\*\*\/|\*)/)
        .map((part) =>
          part === '**/' ? '(?:.*/)?' : part === '*' ? '[^/]*' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'),
        )
        .join('');
      return new RegExp(`^${body}$`);
    });
  return (path) => {
    const parts = path.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      if (regexes.some((r) => r.test(prefix))) return true;
    }
    return false;
  };
}

/** Copies the build context (git's tracked and untracked, not ignored files, minus .dockerignore). */
export function copyContext(repo: string, dest: string): void {
  const ignoreFile = join(repo, '.dockerignore');
  const ignored = dockerignore(existsSync(ignoreFile) ? readFileSync(ignoreFile, 'utf8').split('\n') : []);
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: repo,
    maxBuffer: 64 * 1024 * 1024,
  })
    .toString()
    .split('\0')
    .filter(Boolean);
  for (const file of files) {
    if (ignored(file) || !existsSync(join(repo, file))) continue;
    mkdirSync(dirname(join(dest, file)), { recursive: true });
    cpSync(join(repo, file), join(dest, file));
  }
}

function words(args: string): string[] {
  if (args.startsWith('[')) return JSON.parse(args) as string[];
  return args.split(/\s+/).filter(Boolean);
}

/**
 * Executes every stage of the Dockerfile in `work` (one directory per stage). `runTimeoutMs`
 * bounds each RUN step. Resolves with the stages in order; the last is the image.
 */
export async function runDockerfile(opts: {
  dockerfile: string;
  context: string;
  work: string;
  runTimeoutMs: number;
  env?: Record<string, string>;
  log?: (line: string) => void;
}): Promise<StageResult[]> {
  const stages: StageResult[] = [];
  let stage: StageResult | undefined;
  const inRoot = (s: StageResult, p: string): string =>
    join(s.root, posix.isAbsolute(p) ? p : posix.join(s.workdir, p));
  for (const ins of parseDockerfile(readFileSync(opts.dockerfile, 'utf8'))) {
    const where = `Dockerfile line ${ins.line} (${ins.op} ${ins.args})`;
    if (ins.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`${where}: cannot parse`);
      const name = m[2] ?? `stage-${stages.length}`;
      stage = {
        name,
        root: join(opts.work, name),
        workdir: '/',
        env: {},
        cmd: undefined,
        user: undefined,
        exposed: [],
      };
      mkdirSync(stage.root, { recursive: true });
      stages.push(stage);
      continue;
    }
    if (!stage) throw new Error(`${where}: before FROM`);
    switch (ins.op) {
      case 'WORKDIR':
        stage.workdir = posix.resolve(stage.workdir, ins.args);
        mkdirSync(inRoot(stage, '.'), { recursive: true });
        break;
      case 'ENV': {
        const m = /^([A-Za-z_][A-Za-z0-9_]*)[=\s]+(.*)$/.exec(ins.args);
        if (!m) throw new Error(`${where}: cannot parse`);
        stage.env[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
        break;
      }
      case 'COPY': {
        const parts = words(ins.args);
        let from: StageResult | undefined;
        while (parts[0]?.startsWith('--')) {
          const flag = parts.shift()!;
          const m = /^--from=(.+)$/.exec(flag);
          if (!m) throw new Error(`${where}: unsupported flag ${flag}`);
          from = stages.find((s) => s.name === m[1]);
          if (!from) throw new Error(`${where}: no stage named ${m[1]}`);
        }
        const dest = parts.pop();
        if (!dest || parts.length === 0) throw new Error(`${where}: COPY needs a source and a destination`);
        const destPath = inRoot(stage, dest);
        const intoDir = dest.endsWith('/') || dest === '.' || parts.length > 1;
        for (const src of parts) {
          const srcPath = from ? inRoot(from, src) : join(opts.context, src);
          if (!existsSync(srcPath)) throw new Error(`${where}: ${src} does not exist (${srcPath})`);
          if (statSync(srcPath).isDirectory()) {
            cpSync(srcPath, destPath, { recursive: true });
          } else {
            const target = intoDir ? join(destPath, basename(srcPath)) : destPath;
            mkdirSync(dirname(target), { recursive: true });
            cpSync(srcPath, target);
          }
        }
        break;
      }
      case 'RUN': {
        opts.log?.(`RUN ${ins.args}`);
        const cwd = inRoot(stage, '.');
        const proc = startProcess(`docker-run-${stage.name}-${ins.line}`, 'sh', ['-c', ins.args], {
          cwd,
          env: { ...opts.env, ...stage.env },
        });
        let timer: NodeJS.Timeout | undefined;
        const result = await Promise.race([
          proc.exited,
          new Promise<'timeout'>((r) => {
            timer = setTimeout(() => r('timeout'), opts.runTimeoutMs);
          }),
        ]);
        clearTimeout(timer);
        if (result === 'timeout') {
          await proc.stop(5_000);
          throw new Error(`${where}: timed out after ${opts.runTimeoutMs} ms\n${proc.output().slice(-3000)}`);
        }
        if (result.code !== 0) {
          throw new Error(`${where}: exit code ${result.code}\n${proc.output().slice(-3000)}`);
        }
        break;
      }
      case 'CMD':
        if (!ins.args.startsWith('[')) throw new Error(`${where}: use the exec form, so signals reach node`);
        stage.cmd = JSON.parse(ins.args) as string[];
        break;
      case 'USER':
        stage.user = ins.args;
        break;
      case 'EXPOSE':
        stage.exposed.push(...words(ins.args).map((p) => Number(p.split('/')[0])));
        break;
      case 'ARG':
      case 'LABEL':
        break;
      default:
        throw new Error(`${where}: instruction not supported by this runner`);
    }
  }
  return stages;
}
