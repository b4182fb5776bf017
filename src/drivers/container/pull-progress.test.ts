import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { PullProgress } from './pull-progress.ts';

test('pull progress counts layers and bytes', () => {
  const p = new PullProgress();
  assert.equal(p.summary(), '');
  p.add({ status: 'Pulling from library/app', id: 'latest' });
  p.add({ status: 'Already exists', id: 'a' });
  p.add({ status: 'Pulling fs layer', id: 'b' });
  p.add({ status: 'Downloading', id: 'b', progressDetail: { current: 1_000_000, total: 4_000_000 } });
  assert.equal(p.summary(), '1/2 layers, 1.0 MB of 4.0 MB');
  p.add({ status: 'Download complete', id: 'b' });
  assert.equal(p.summary(), '2/2 layers, 4.0 MB of 4.0 MB');
});
