import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ExecSession, InstanceSpec, OutputChunk } from '../driver.ts';
import { behaviourOf } from './behaviour.ts';
import { SimDriver, SimMachineDriver, SimRuntime, simDrivers } from './driver.ts';

function spec(id: string, env: Record<string, string> = {}, host = 'hst_a'): InstanceSpec {
  return { id, host, image: 'busybox', env } as unknown as InstanceSpec;
}

async function text(chunks: AsyncIterable<OutputChunk>): Promise<string> {
  let out = '';
  for await (const c of chunks) out += c.data.toString();
  return out;
}

async function run(s: ExecSession): Promise<{ out: string; code: number }> {
  return { out: await text(s.output), code: await s.exitCode() };
}

test('a workload runs until stopped; a polite stop ends it cleanly and a new start runs it again', async () => {
  const d = new SimDriver({ kind: 'container' });
  assert.equal(await d.probe(), true);
  assert.deepEqual(await d.inspect('a'), { state: 'absent' });
  await d.start(spec('a'));
  assert.equal((await d.inspect('a')).state, 'running');
  const exited = d.waitExit('a');
  await d.stop('a', 10);
  assert.equal(await exited, 0);
  assert.deepEqual(await d.inspect('a'), { state: 'stopped', exitCode: 0 });
  await d.start(spec('a'));
  assert.equal((await d.inspect('a')).state, 'running');
  await d.destroy('a');
  assert.deepEqual(await d.inspect('a'), { state: 'absent' });
});

test('a workload exits by itself after SIM_EXIT_AFTER_MS with SIM_EXIT_CODE', async () => {
  const d = new SimDriver({ kind: 'container' });
  await d.start(spec('a', { SIM_EXIT_AFTER_MS: '5', SIM_EXIT_CODE: '3' }));
  assert.equal(await d.waitExit('a'), 3);
  assert.deepEqual(await d.inspect('a'), { state: 'failed', exitCode: 3, message: 'exited with code 3' });
});

test('a start fails on request, slowly on request, and leaves nothing behind', async () => {
  const d = new SimDriver({ kind: 'container' });
  await assert.rejects(d.start(spec('a', { SIM_START_FAIL: 'image not found' })), /^Error: image not found$/);
  assert.deepEqual(await d.inspect('a'), { state: 'absent' });
  const said: string[] = [];
  await d.start(spec('b', { SIM_START_MS: '5' }), m => said.push(m));
  assert.deepEqual(said, ['pulling busybox (simulated)']);
  await assert.rejects(d.start(spec('c', { SIM_EXIT_CODE: 'x' })), /SIM_EXIT_CODE must be a whole number/);
  await assert.rejects(d.start(spec('c', { SIM_STOP: 'slow' })), /SIM_STOP must be "hang"/);
});

test('a workload that ignores the polite signal is killed after the grace', async t => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const d = new SimDriver({ kind: 'container' });
  await d.start(spec('a', { SIM_STOP: 'hang' }));
  const stopping = d.stop('a', 30);
  t.mock.timers.tick(29_999);
  assert.equal((await d.inspect('a')).state, 'running');
  t.mock.timers.tick(1);
  await stopping;
  assert.deepEqual(await d.inspect('a'), { state: 'failed', exitCode: 137, message: 'killed (exit 137): SIGKILL' });
  await d.start(spec('b', { SIM_STOP_MS: '10' }));
  const polite = d.stop('b', 1);
  t.mock.timers.tick(10);
  await polite;
  assert.equal((await d.inspect('b')).exitCode, 0);
});

test('a paused workload holds its own exit until resumed', async t => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const d = new SimDriver({ kind: 'container' });
  await d.start(spec('a', { SIM_EXIT_AFTER_MS: '30' }));
  t.mock.timers.tick(10);
  await d.pause('a');
  assert.equal((await d.inspect('a')).state, 'paused');
  await assert.rejects(d.exec('a', { command: ['true'], tty: false, stdin: false }), /not running/);
  t.mock.timers.tick(1000);
  assert.equal((await d.inspect('a')).state, 'paused');
  await d.resume('a');
  t.mock.timers.tick(19);
  assert.equal((await d.inspect('a')).state, 'running');
  t.mock.timers.tick(1);
  assert.equal(await d.waitExit('a'), 0);
  assert.equal((await d.inspect('a')).state, 'stopped');
});

test('logs hold what each start wrote; follow ends with the run', async () => {
  const d = new SimDriver({ kind: 'container' });
  await d.start(spec('a', { SIM_LOG: 'one\ntwo\nthree' }));
  assert.equal(await text(await d.logs('a', { follow: false }, new AbortController().signal)), 'one\ntwo\nthree\n');
  assert.equal(await text(await d.logs('a', { follow: false, tail: 1 }, new AbortController().signal)), 'three\n');
  const followed = text(await d.logs('a', { follow: true, tail: 0 }, new AbortController().signal));
  await d.stop('a', 1);
  await d.start(spec('a', { SIM_LOG: 'again' }));
  assert.equal(await followed, '');
  await assert.rejects(d.logs('zz', { follow: false }, new AbortController().signal), /no workload/);
});

test('exec runs the built-in commands', async () => {
  const d = new SimDriver({ kind: 'container' });
  await d.start(spec('a'));
  const exec = (...command: string[]) => d.exec('a', { command, tty: false, stdin: true });
  assert.deepEqual(await run(await exec('echo', 'hello', 'there')), { out: 'hello there\n', code: 0 });
  assert.deepEqual(await run(await exec('false')), { out: '', code: 1 });
  assert.deepEqual(await run(await exec('exit', '7')), { out: '', code: 7 });
  assert.deepEqual(await run(await exec('nope')), { out: 'nope: command not found\n', code: 127 });
  const cat = await exec('cat');
  cat.write(Buffer.from('typed'));
  cat.closeStdin();
  assert.deepEqual(await run(cat), { out: 'typed', code: 0 });
});

test('each host lists only its own workloads, of its own kind', async () => {
  const runtime = new SimRuntime();
  const [containers, vms] = simDrivers(runtime);
  await containers!.start(spec('a', {}, 'h1'));
  await containers!.start(spec('b', {}, 'h2'));
  await vms!.start(spec('c', {}, 'h1'));
  assert.deepEqual(await containers!.list('h1'), ['a']);
  assert.deepEqual(await vms!.list('h1'), ['c']);
  assert.deepEqual(await vms!.inspect('a'), { state: 'absent' });
  // Another driver on the same runtime (an agent restarted) finds them again.
  assert.deepEqual(await new SimDriver({ kind: 'container', runtime }).list('h2'), ['b']);
});

test('a simulated machine reboots in place and has a console; a container has neither', async () => {
  const vm = new SimMachineDriver();
  assert.equal('reboot' in new SimDriver({ kind: 'container' }), false);
  assert.deepEqual([vm.capabilities.reboot, vm.capabilities.console, vm.capabilities.exec], [true, true, true]);
  assert.equal(new SimDriver({ kind: 'container' }).capabilities.console, false);
  await vm.start(spec('m', { SIM_LOG: 'booted' }));
  const firstRun = vm.waitExit('m');
  await vm.reboot('m');
  assert.equal(await firstRun, 0);
  assert.equal((await vm.inspect('m')).state, 'running');
  assert.equal(await text(await vm.logs('m', { follow: false }, new AbortController().signal)), 'booted\nbooted\n');
  const c = await vm.console('m');
  c.write(Buffer.from('root'));
  c.closeStdin();
  assert.deepEqual(await run(c), { out: '\r\nm login: root', code: 0 });
});

test('the behaviour grammar: defaults, and every variable', () => {
  assert.deepEqual(behaviourOf({ env: {} }), {
    startMs: 0,
    startFail: undefined,
    exitAfterMs: undefined,
    exitCode: 0,
    stopMs: 0,
    log: [],
  });
  const b = behaviourOf({
    env: { SIM_START_MS: '1', SIM_EXIT_AFTER_MS: '2', SIM_EXIT_CODE: '255', SIM_STOP: 'hang', SIM_LOG: 'x' },
  });
  assert.equal(b.stopMs, Number.POSITIVE_INFINITY);
  assert.deepEqual([b.startMs, b.exitAfterMs, b.exitCode, b.log], [1, 2, 255, ['x']]);
  assert.throws(() => behaviourOf({ env: { SIM_EXIT_CODE: '256' } }), /from 0 to 255/);
  assert.throws(() => behaviourOf({ env: { SIM_START_MS: '-1' } }), /whole number/);
});
