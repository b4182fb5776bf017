// For tests that keep start-up cheap (the CLI loads what a command needs only).
import { execFileSync } from 'node:child_process';

/**
 * The packages a fresh Node resolves while it imports the module (as `k`) and
 * then runs `after`, an ES module body that may use `k`.
 */
export function packagesLoaded(moduleUrl: string, after = ''): string[] {
  const out = execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { registerHooks } = await import('node:module');
       const seen = new Set();
       registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); const pkg = /\\/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(r.url)?.[1]; if (pkg) seen.add(pkg); return r; } });
       const k = await import(${JSON.stringify(moduleUrl)});
       ${after}
       console.log(JSON.stringify([...seen].sort()));`,
    ],
    { encoding: 'utf8' },
  );
  return JSON.parse(out) as string[];
}
