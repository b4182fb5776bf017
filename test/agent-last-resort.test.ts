// No single instance can stop an agent: an error nobody caught in one
// instance's work fails that instance, and the agent goes on serving others.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { client, removeDir, startTestServer, tempDir, until } from './helpers.ts';

test('an uncaught error in one instance fails it and leaves the agent running', async () => {
  const srv = await startTestServer();
  const admin = client(srv.url, srv.adminToken);
  const data = tempDir('strata-faulty-agent-');
  const joinToken = (await admin.post('/v1/join-tokens', {})).body.secret as string;
  const agent = spawn(
    process.execPath,
    [
      '--disable-warning=ExperimentalWarning',
      join(import.meta.dirname, 'fixtures', 'faulty-agent.ts'),
      srv.url,
      joinToken,
      data,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  // Its log (JSON lines) and anything else it prints.
  let stderr = '';
  agent.stdout!.on('data', (d: Buffer) => (stderr += d.toString()));
  agent.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    await until('the host registers', async () =>
      (await admin.get('/v1/hosts')).body.items.some((h: { name: string }) => h.name === 'faulty') ? true : undefined,
    );
    const create = async (image: string) =>
      (await admin.post('/v1/instances', { project: 'default', kind: 'container', image })).body.id as string;
    const crashing = await create('crash-me');
    const failed = await until('the crashing instance fails', async () => {
      const i = (await admin.get(`/v1/instances/${crashing}`)).body;
      return i.state === 'failed' ? i : undefined;
    });
    assert.match(failed.message, /unexpected error handling this instance: boom from the runtime client/);
    assert.equal(agent.exitCode, null, `the agent is still running: ${stderr}`);
    // And it still does its work.
    const fine = await create('busybox');
    await until('the next instance runs', async () =>
      (await admin.get(`/v1/instances/${fine}`)).body.state === 'running' ? true : undefined,
    );
    assert.equal(agent.exitCode, null, stderr);
    assert.match(stderr, /unexpected error while handling an instance/);
  } finally {
    agent.kill('SIGKILL');
    await srv.close();
    removeDir(data);
  }
});
