// The CLI as a benchmark runs it: its context read from a config file, as after
// `strata dev` or `strata login`, and none of the caller's STRATA_* variables.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Writes `dir`/config.yaml naming the server as the current context; answers the environment the CLI runs in. */
export function cliContextEnv(dir: string, srv: { url: string; adminToken: string }): NodeJS.ProcessEnv {
  const configFile = join(dir, 'config.yaml');
  writeFileSync(
    configFile,
    `currentContext: bench\ncontexts:\n  bench:\n    url: ${srv.url}\n    token: ${srv.adminToken}\n    project: default\n`,
    { mode: 0o600 },
  );
  const env: NodeJS.ProcessEnv = { ...process.env, STRATA_CONFIG: configFile };
  for (const k of ['STRATA_URL', 'STRATA_TOKEN', 'STRATA_PROJECT', 'STRATA_DEBUG']) delete env[k];
  return env;
}
