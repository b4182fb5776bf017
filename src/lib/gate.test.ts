import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { Gate } from './gate.ts';

test('a gate runs at most its limit at once, the rest in order, and survives failures', async () => {
  const gate = new Gate(2);
  const started: number[] = [];
  const release: (() => void)[] = [];
  const task = (i: number) => () =>
    new Promise<number>((resolve, reject) => {
      started.push(i);
      release[i] = () => (i === 1 ? reject(new Error('boom')) : resolve(i));
    });
  const runs = [0, 1, 2, 3].map(i => gate.run(task(i)));
  await new Promise(r => setImmediate(r));
  assert.deepEqual(started, [0, 1]);
  release[1]!();
  await assert.rejects(runs[1]!, /boom/);
  await new Promise(r => setImmediate(r));
  assert.deepEqual(started, [0, 1, 2]);
  assert.equal(gate.running, 2);
  release[0]!();
  release[2]!();
  await new Promise(r => setImmediate(r));
  assert.deepEqual(started, [0, 1, 2, 3]);
  release[3]!();
  assert.deepEqual(await Promise.all([runs[0], runs[2], runs[3]]), [0, 2, 3]);
  assert.equal(gate.running, 0);
  assert.throws(() => new Gate(0), /at least one/);
});
