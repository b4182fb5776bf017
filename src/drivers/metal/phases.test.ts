import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { Phases } from './phases.ts';

test('each mark ends the phase since the one before; a phase marked twice adds up', () => {
  let t = 1000;
  const p = new Phases(() => t);
  t = 1250;
  p.mark('arm');
  t = 1300;
  p.mark('powerOn');
  t = 1400;
  p.mark('arm');
  assert.deepEqual(p.ms, { armMs: 350, powerOnMs: 50 });
});
