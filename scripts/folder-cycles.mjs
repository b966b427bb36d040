// Folder-level import cycles in a source tree: folder A imports from folder B and B, directly or
// through other folders, imports from A (a subfolder's imports of its ancestors excepted).
// Type-only imports count too: they tie the folders' designs together as much as value imports
// do. Usage: node scripts/folder-cycles.mjs [root] (default backend/src); exits 1 when a cycle
// is found.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(process.argv[2] ?? 'backend/src');
const IMPORT =
  /(?:^|[\s;])(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function* sources(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(path);
    else if (/\.(?:ts|mts|tsx)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) yield path;
  }
}

const folderOf = (file) => relative(root, dirname(file)) || '.';
/** folder → folder → the imports that make the edge ("file → specifier"). */
const edges = new Map();
for (const file of sources(root)) {
  const text = readFileSync(file, 'utf8');
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    if (!spec.startsWith('.')) continue;
    const target = resolve(dirname(file), spec);
    if (relative(root, target).startsWith('..')) continue;
    const [from, to] = [folderOf(file), folderOf(target)];
    if (from === to) continue;
    // A subfolder using its parent's definitions (store/mongodb/ → store/types.ts, the contract it
    // implements) is part of the parent, not a second module the parent depends back on.
    if (to === '.' || from.startsWith(`${to}/`)) continue;
    if (!edges.has(from)) edges.set(from, new Map());
    const out = edges.get(from);
    if (!out.has(to)) out.set(to, []);
    out.get(to).push(`${relative(root, file)} → ${spec}`);
  }
}

// Tarjan's strongly connected components: a component of more than one folder is a cycle.
let index = 0;
const stack = [];
const state = new Map();
const cycles = [];
function visit(v) {
  state.set(v, { index, low: index, onStack: true });
  index++;
  stack.push(v);
  for (const w of edges.get(v)?.keys() ?? []) {
    if (!state.has(w)) {
      visit(w);
      state.get(v).low = Math.min(state.get(v).low, state.get(w).low);
    } else if (state.get(w).onStack) state.get(v).low = Math.min(state.get(v).low, state.get(w).index);
  }
  if (state.get(v).low === state.get(v).index) {
    const component = [];
    let w;
    do {
      w = stack.pop();
      state.get(w).onStack = false;
      component.push(w);
    } while (w !== v);
    if (component.length > 1) cycles.push(component.sort());
  }
}
for (const v of edges.keys()) if (!state.has(v)) visit(v);

// Two folders that import each other directly, the plainest kind of cycle.
const pairs = [];
for (const [a, out] of edges)
  for (const b of out.keys()) if (a < b && edges.get(b)?.has(a)) pairs.push(`${a} ⇄ ${b}`);
console.log(`folders importing each other: ${pairs.length === 0 ? 'none' : pairs.join(', ')}`);

const folders = new Set([...edges.keys(), ...[...edges.values()].flatMap((m) => [...m.keys()])]);
if (cycles.length === 0) {
  console.log(
    `no folder-level import cycles in ${relative(process.cwd(), root) || '.'} (${folders.size} folders)`,
  );
} else {
  for (const component of cycles) {
    console.log(`cycle: ${component.join(', ')}`);
    for (const a of component)
      for (const [b, why] of edges.get(a) ?? [])
        if (component.includes(b)) for (const line of why) console.log(`  ${a} → ${b}: ${line}`);
  }
  process.exitCode = 1;
}
