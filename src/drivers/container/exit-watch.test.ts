// ExitWatch against a stand-in runtime: containers whose state the test sets,
// an event stream the test writes to (or ends), and counts of what was asked.
import { strict as assert } from 'node:assert';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import type Docker from 'dockerode';
import { ExitWatch } from './exit-watch.ts';

function runtime() {
  const state = new Map<string, { running: boolean; exitCode: number }>();
  const streams: PassThrough[] = [];
  const asked = { inspect: 0, events: 0, list: 0 };
  const docker = {
    getEvents: async () => {
      asked.events++;
      const s = new PassThrough();
      streams.push(s);
      return s;
    },
    getContainer: (id: string) => ({
      inspect: async () => {
        asked.inspect++;
        const c = state.get(id);
        if (!c) throw Object.assign(new Error('no such container'), { statusCode: 404 });
        return { State: { Running: c.running, Restarting: false, ExitCode: c.exitCode } };
      },
    }),
    listContainers: async (o: { filters: { id: string[] } }) => {
      asked.list++;
      return o.filters.id
        .filter(id => state.has(id))
        .map(id => ({ Id: id, State: state.get(id)?.running ? 'running' : 'exited' }));
    },
  } as unknown as Docker;
  const event = (id: string, action: string) =>
    streams.at(-1)?.write(`${JSON.stringify({ Type: 'container', Action: action, Actor: { ID: id } })}\n`);
  return { state, streams, asked, docker, event };
}

const tick = () => new Promise(r => setTimeout(r, 5));

test('an exit is reported from its die event, with the code the runtime holds; one stream serves every wait', async () => {
  const rt = runtime();
  const watch = new ExitWatch(rt.docker);
  rt.state.set('a', { running: true, exitCode: 0 });
  rt.state.set('b', { running: true, exitCode: 0 });
  const a = watch.wait('a');
  const b = watch.wait('b');
  await tick();
  assert.equal(rt.asked.events, 1);
  const lookedOnOpen = rt.asked.inspect;
  // Another container's events and other actions are not looked up.
  rt.event('c', 'die');
  rt.event('a', 'exec_create');
  await tick();
  assert.equal(rt.asked.inspect, lookedOnOpen);
  rt.state.set('a', { running: false, exitCode: 3 });
  rt.event('a', 'die');
  assert.equal(await a, 3);
  // Podman's name for it, and a container removed while waited on.
  rt.state.delete('b');
  rt.event('b', 'remove');
  assert.equal(await b, 137);
  // Nobody waits: the stream is let go.
  await tick();
  assert.equal(watch.watching, 0);
  assert.equal(rt.streams[0]?.destroyed, true);
  watch.close();
});

test('a container that ended before the stream opened is reported at once', async () => {
  const rt = runtime();
  const watch = new ExitWatch(rt.docker);
  rt.state.set('a', { running: false, exitCode: 7 });
  assert.equal(await watch.wait('a'), 7);
  watch.close();
});

test('a stream that ends is opened again and every waited container looked at', async () => {
  const rt = runtime();
  const watch = new ExitWatch(rt.docker);
  rt.state.set('a', { running: true, exitCode: 0 });
  const a = watch.wait('a');
  await tick();
  // The exit happens while the stream is down: no event will tell of it.
  rt.streams[0]?.end();
  rt.streams[0]?.resume();
  rt.state.set('a', { running: false, exitCode: 9 });
  assert.equal(await a, 9);
  assert.equal(rt.asked.events, 2);
  watch.close();
});

test('an exit whose event never came is found by the sweep', async () => {
  const rt = runtime();
  const watch = new ExitWatch(rt.docker, { sweepMs: 50 });
  rt.state.set('a', { running: true, exitCode: 0 });
  rt.state.set('b', { running: true, exitCode: 0 });
  const a = watch.wait('a');
  void watch.wait('b');
  await tick();
  rt.state.set('a', { running: false, exitCode: 4 });
  assert.equal(await a, 4);
  assert.ok(rt.asked.list >= 1);
  assert.equal(watch.watching, 1);
  watch.close();
});

test('a die event ahead of the state the runtime shows is looked at again', async () => {
  const rt = runtime();
  const watch = new ExitWatch(rt.docker, { sweepMs: 60_000 });
  rt.state.set('a', { running: true, exitCode: 0 });
  const a = watch.wait('a');
  await tick();
  rt.event('a', 'die');
  await tick();
  rt.state.set('a', { running: false, exitCode: 5 });
  assert.equal(await a, 5);
  assert.equal(rt.asked.list, 0);
  watch.close();
});
