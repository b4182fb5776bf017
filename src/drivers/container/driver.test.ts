import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { containerName } from './driver.ts';

test('container names are unique per instance and do not repeat the id suffix', () => {
  assert.equal(containerName({ id: 'ins_01abcdefghjkmnpqrstvwxyz0', name: 'web' }), 'strata-web-qrstvwxyz0');
  assert.equal(
    containerName({ id: 'ins_01abcdefghjkmnpqrstvwxyz0', name: 'container-qrstvwxyz0' }),
    'strata-container-qrstvwxyz0',
  );
});
