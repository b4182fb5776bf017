import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { canTransition, instanceStates } from './instance-state.ts';

test('deleted is terminal', () => {
  for (const s of instanceStates) if (s !== 'deleted') assert.equal(canTransition('deleted', s), false, s);
});

test('an instance cannot run before it is placed', () => {
  assert.equal(canTransition('pending', 'running'), false);
  assert.equal(canTransition('pending', 'starting'), false);
  assert.equal(canTransition('pending', 'scheduled'), true);
});

test('a stopping instance cannot go back to starting without stopping first', () => {
  assert.equal(canTransition('stopping', 'starting'), false);
  assert.equal(canTransition('stopping', 'stopped'), true);
  assert.equal(canTransition('stopped', 'starting'), true);
});

test('every state can fail or be deleted except the terminal ones', () => {
  for (const s of instanceStates) {
    if (s === 'deleted') continue;
    assert.equal(canTransition(s, 'failed'), true, s);
    if (s !== 'deleting') assert.equal(canTransition(s, 'deleting'), true, s);
  }
});
