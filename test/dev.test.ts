// `strata dev` end to end: one command gives a server, a registered local
// host and a CLI context that the next CLI call uses.
import { strict as assert } from 'node:assert';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { parse } from 'yaml';
import { strataBin, tempDir } from './helpers.ts';

const run = promisify(execFile);

test('strata dev starts a server and an agent and becomes the current context', async () => {
  const dir = tempDir('strata-dev-');
  const { STRATA_URL: _u, STRATA_TOKEN: _t, STRATA_PROJECT: _p, ...inherited } = process.env;
  const env = { ...inherited, STRATA_CONFIG: join(dir, 'config.yaml') };
  const dev = spawn(strataBin, ['dev', '--data', join(dir, 'data'), '--listen', '127.0.0.1:0'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  dev.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  dev.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no banner: ${out}`)), 60_000);
      dev.stdout!.on('data', () => {
        const m = /Strata is running at (http:\/\/\S+)/.exec(out);
        if (m?.[1]) {
          clearTimeout(t);
          resolve(m[1]);
        }
      });
    });
    const tokenFile = join(dir, 'data', 'admin.token');
    assert.ok(out.includes(tokenFile), 'banner names the admin token file');
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600);

    const config = parse(readFileSync(join(dir, 'config.yaml'), 'utf8')) as {
      currentContext: string;
      contexts: Record<string, { url: string; token: string }>;
    };
    assert.equal(config.currentContext, 'dev');
    assert.equal(config.contexts.dev?.url, url);
    assert.equal(config.contexts.dev?.token, readFileSync(tokenFile, 'utf8').trim());

    // The CLI, with no flags, talks to the dev server and sees the local host.
    let hosts: { name: string; state: string }[] = [];
    for (let i = 0; i < 100 && hosts.length === 0; i++) {
      const { stdout } = await run(strataBin, ['host', 'list', '-o', 'json'], { env });
      hosts = JSON.parse(stdout) as typeof hosts;
      if (hosts.length === 0) await new Promise(r => setTimeout(r, 200));
    }
    assert.equal(hosts.length, 1, 'the local agent registered this machine');
    assert.equal(hosts[0]?.state, 'ready');
    // The server answers the registration before the agent writes what it was given.
    const identity = join(dir, 'data', 'agent', 'identity.json');
    for (let i = 0; i < 300 && !existsSync(identity); i++) await new Promise(r => setTimeout(r, 200));
    assert.ok(existsSync(identity), 'the agent keeps its identity in its data directory');
  } finally {
    const exited = new Promise<number | null>(r => dev.once('exit', r));
    dev.kill('SIGINT');
    assert.equal(await exited, 0, `strata dev exits cleanly on Ctrl-C: ${out}`);
  }
});
