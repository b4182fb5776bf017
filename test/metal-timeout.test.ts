// A node that never calls back: its NIC is on a network no conductor serves,
// so its network boot finds nothing. Inspection must fail by its deadline,
// by name and with the reason, and leave the node powered off.
import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import { type Rig, startRig } from '../src/rig/metal/rig.ts';
import { freePort, startContainerFixture, tempDir, until, type ContainerFixture } from './helpers.ts';

let rig: Rig;
let fx: ContainerFixture;

before(async () => {
  // The node's wire goes nowhere: stmetal2 has no conductor on it.
  rig = await startRig({
    dir: tempDir('strata-metal-lost-'),
    bridge: 'stmetal2',
    nodes: [{ name: 'lost', bmc: 'ipmi', username: 'admin', password: 'lost-pass' }],
  });
  fx = await startContainerFixture('metal-lonely', {
    drivers: ['container', 'metal'],
    agentArgs: [
      '--metal-bridge',
      'stmetal1',
      '--metal-cidr',
      '172.30.252.1/24',
      '--metal-port',
      String(await freePort()),
    ],
    nodeStepTimeouts: { inspecting: 25 },
  });
});

after(async () => {
  await fx?.close();
  await rig?.stop();
});

test('a node that never calls back fails its inspection when the step times out, and is left off', async () => {
  const res = await fx.admin.post('/v1/nodes', { name: 'lost', bmc: rig.nodes[0]!.bmcUrl });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  await fx.admin.post('/v1/nodes/lost/provision', { action: 'manage' });
  await until('lost manageable', async () => {
    const n = (await fx.admin.get('/v1/nodes/lost')).body;
    return n.provisionState === 'manageable' ? n : undefined;
  });
  const started = Date.now();
  assert.equal((await fx.admin.post('/v1/nodes/lost/provision', { action: 'inspect' })).status, 202);
  const failed = await until(
    'lost inspect failed',
    async () => {
      const n = (await fx.admin.get('/v1/nodes/lost')).body;
      assert.notEqual(n.provisionState, 'manageable', 'the inspection cannot succeed');
      return n.provisionState === 'inspect failed' ? n : undefined;
    },
    120_000,
  );
  assert.ok(Date.now() - started >= 20_000, 'not before its deadline');
  assert.match(
    failed.lastError,
    /inspecting timed out after 2\d s waiting for the node to boot the ramdisk and call back/,
  );
  // Left powered off, and it can be tried again.
  const { openBmc } = await import('../src/drivers/metal/bmc/index.ts');
  const { bmcAddressOf } = await import('../src/drivers/metal/conductor.ts');
  const bmc = openBmc(bmcAddressOf(rig.nodes[0]!.bmcUrl));
  await until('the node is off', async () => ((await bmc.power()) === 'off' ? true : undefined), 30_000);
  const again = await fx.admin.post('/v1/nodes/lost/provision', { action: 'inspect' });
  assert.equal(again.status, 202);
  assert.equal(again.body.provisionState, 'inspecting');
});
