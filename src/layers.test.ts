// Imports go down only (docs/architecture.md): a module may import its own
// folder and the folders listed for it below, never one above. This test
// reads every import in src/ and names each one that breaks the rule.
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';

const SRC = dirname(new URL(import.meta.url).pathname);

/** What each folder of src/ may import besides itself. */
export const allowed: Record<string, readonly string[]> = {
  lib: [],
  model: ['lib'],
  scheduler: ['model', 'lib'],
  store: ['model', 'lib'],
  drivers: ['model', 'lib'],
  kinds: ['drivers', 'model', 'lib'],
  services: ['store', 'scheduler', 'kinds', 'model', 'lib'],
  controllers: ['services', 'store', 'scheduler', 'kinds', 'model', 'lib'],
  api: ['services', 'scheduler', 'kinds', 'model', 'lib'],
  agent: ['drivers', 'kinds', 'model', 'lib'],
  // The composition root: builds the store, services, controllers and API.
  server: ['api', 'controllers', 'services', 'store', 'scheduler', 'kinds', 'model', 'lib'],
  // A thin client of the public API; a role command (server, agent, dev)
  // loads its role with a dynamic import() inside its action.
  cli: ['kinds', 'model', 'lib'],
  // Emulated bare-metal servers and their BMCs, for tests and `strata dev --with-metal`.
  rig: ['lib'],
};

/** What a role command of the CLI (strata server, agent, dev) may load with import() inside its action. */
const roles: readonly string[] = ['server', 'agent', 'drivers', 'rig'];

/** Imports only a type from these folders: it is erased at run time and names a row, not a query. */
const typeOnly: Record<string, readonly string[]> = {
  api: ['store'],
};

/** Single files that may import one module above their folder. */
const fileExceptions: Record<string, readonly string[]> = {
  // The agent's reconcile loop is tested against a real server in the test's process.
  'agent/agent.test.ts': ['server/server.ts'],
};

/** Packages only one folder may import: the SQL stays in the store, SQLite in its backend. */
const packageHomes: Record<string, string> = {
  kysely: 'store',
  'better-sqlite3': 'store/sqlite',
};

/** Query building in a route handler: it belongs in a store module, called through a service. */
const queryInRoute = /\.(selectFrom|updateTable|insertInto|deleteFrom|transaction)\(|\bsql`|\bstore\.db\b/;

export interface Import {
  spec: string;
  typeOnly: boolean;
  dynamic: boolean;
}

export function importsOf(source: string): Import[] {
  const out: Import[] = [];
  const statik = /(?:^|\n)\s*(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s*)?'([^']+)'/g;
  for (const m of source.matchAll(statik)) out.push({ spec: m[2]!, typeOnly: m[1] !== undefined, dynamic: false });
  for (const m of source.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g))
    out.push({ spec: m[1]!, typeOnly: false, dynamic: true });
  return out;
}

function layerOf(file: string): string {
  return relative(SRC, file).split('/')[0]!;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') && p !== join(SRC, 'layers.test.ts') ? [p] : [];
  });
}

/** Why `imp` in `file` breaks the rule, or undefined when it keeps it. */
export function violation(file: string, imp: Import): string | undefined {
  const from = layerOf(file);
  if (!imp.spec.startsWith('.')) {
    const pkg = imp.spec.startsWith('@') ? imp.spec.split('/').slice(0, 2).join('/') : imp.spec.split('/')[0]!;
    const home = packageHomes[pkg];
    if (home && !relative(SRC, file).startsWith(`${home}/`))
      return `${from} imports ${pkg}, which src/${home}/ alone may`;
    return undefined;
  }
  const target = resolve(dirname(file), imp.spec);
  if (!target.startsWith(`${SRC}/`)) return undefined;
  const to = layerOf(target);
  if (to === from) return undefined;
  const rules = allowed[from];
  if (!rules) return `src/${from}/ has no place in the layer map (src/layers.test.ts)`;
  if (rules.includes(to)) return undefined;
  if (imp.typeOnly && typeOnly[from]?.includes(to)) return undefined;
  if (fileExceptions[relative(SRC, file)]?.includes(relative(SRC, target))) return undefined;
  if (from === 'cli' && imp.dynamic && roles.includes(to)) return undefined;
  return `${from} imports ${to} (${imp.spec})`;
}

/** Lines of a route handler's source that build a query. */
export function queriesIn(source: string): string[] {
  return source.split('\n').filter(line => queryInRoute.test(line));
}

test('every import in src/ goes down the layers', () => {
  const problems: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const source = readFileSync(file, 'utf8');
    for (const imp of importsOf(source)) {
      const why = violation(file, imp);
      if (why) problems.push(`${relative(SRC, file)}: ${why}`);
    }
    if (layerOf(file) === 'api')
      for (const line of queriesIn(source)) problems.push(`${relative(SRC, file)}: builds a query: ${line.trim()}`);
  }
  assert.deepEqual(problems, []);
});

test('the rule refuses a back-import, the store in a route and a static import of a role in the CLI', () => {
  const at = (path: string) => join(SRC, path);
  const imp = (spec: string, more: Partial<Import> = {}): Import => ({
    spec,
    typeOnly: false,
    dynamic: false,
    ...more,
  });
  assert.match(violation(at('services/x.ts'), imp('../api/schemas.ts')) ?? '', /services imports api/);
  assert.match(violation(at('drivers/x.ts'), imp('../agent/fingerprint.ts')) ?? '', /drivers imports agent/);
  assert.match(violation(at('model/x.ts'), imp('../store/schema.ts', { typeOnly: true })) ?? '', /model imports/);
  assert.match(violation(at('cli/x.ts'), imp('../server/server.ts')) ?? '', /cli imports server/);
  assert.match(violation(at('api/x.ts'), imp('kysely')) ?? '', /api imports kysely/);
  assert.match(violation(at('services/x.ts'), imp('kysely')) ?? '', /services imports kysely/);
  assert.equal(violation(at('store/x.ts'), imp('kysely')), undefined);
  assert.match(violation(at('api/x.ts'), imp('../store/hosts.ts')) ?? '', /api imports store/);
  assert.match(violation(at('store/x.ts'), imp('better-sqlite3')) ?? '', /src\/store\/sqlite\/ alone/);
  assert.equal(violation(at('store/sqlite/x.ts'), imp('better-sqlite3')), undefined);
  assert.equal(violation(at('api/x.ts'), imp('../store/schema.ts', { typeOnly: true })), undefined);
  assert.deepEqual(queriesIn("const a = 1;\nconst r = await store.db.selectFrom('hosts');\n  .updateTable('x')"), [
    "const r = await store.db.selectFrom('hosts');",
    "  .updateTable('x')",
  ]);
  assert.match(violation(at('nowhere/x.ts'), imp('../lib/ids.ts')) ?? '', /no place in the layer map/);
  assert.equal(violation(at('cli/x.ts'), imp('../server/server.ts', { dynamic: true })), undefined);
  assert.match(violation(at('cli/x.ts'), imp('../store/hosts.ts', { dynamic: true })) ?? '', /cli imports store/);
  assert.equal(violation(at('api/x.ts'), imp('../services/instances.ts')), undefined);
  assert.match(violation(at('model/schemas.ts'), imp('../kinds/index.ts')) ?? '', /model imports kinds/);
  assert.match(
    violation(at('drivers/x.ts'), imp('../kinds/kind.ts', { typeOnly: true })) ?? '',
    /drivers imports kinds/,
  );
  assert.equal(violation(at('agent/agent.test.ts'), imp('../server/server.ts')), undefined);
  assert.match(violation(at('agent/agent.ts'), imp('../server/server.ts')) ?? '', /agent imports server/);
});

test('imports are read in every form the code uses', () => {
  const src = [
    "import { a } from './a.ts';",
    'import type { B } from "./ignored-double-quotes";',
    "import type {\n  C,\n  D,\n} from '../c.ts';",
    "export { e } from './e.ts';",
    "import './side-effect.ts';",
    "const { f } = await import('../f.ts');",
    "export const g = 'not an import';",
  ].join('\n');
  assert.deepEqual(
    importsOf(src).map(i => [i.spec, i.typeOnly, i.dynamic]),
    [
      ['./a.ts', false, false],
      ['../c.ts', true, false],
      ['./e.ts', false, false],
      ['./side-effect.ts', false, false],
      ['../f.ts', false, true],
    ],
  );
});
