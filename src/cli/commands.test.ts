import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { Command } from 'commander';
import { packagesLoaded } from '../lib/packages-loaded.ts';
import { addCommands, sections } from './commands.ts';

test('each entry names the command its module defines, with its aliases', async () => {
  const program = new Command('strata');
  for (const entry of sections.flatMap(s => s.commands)) {
    const cmd = await entry.load(program);
    assert.deepEqual([cmd.name(), ...cmd.aliases()], entry.names);
  }
});

test('only the command named first is loaded; help, completion and unknown names load every one', async () => {
  const names = async (args: string[]) => {
    const program = new Command('strata');
    await addCommands(program, args);
    return program.commands.map(c => c.name());
  };
  const every = sections.flatMap(s => s.commands.map(c => c.names[0]));
  assert.deepEqual(await names(['instances', 'ls']), ['instance']);
  assert.deepEqual(await names(['run', 'busybox']), ['run']);
  assert.deepEqual(await names(['--version']), []);
  assert.deepEqual(await names([]), every);
  assert.deepEqual(await names(['--help']), every);
  assert.deepEqual(await names(['help', 'instance']), every);
  assert.deepEqual(await names(['completion', 'bash']), every);
  assert.deepEqual(await names(['instanc']), every);
});

test('a CLI command loads no package but commander until it runs', () => {
  for (const m of ['./instances.ts', './hosts.ts', './contexts.ts', './streams.ts', './events.ts', './apply.ts'])
    assert.deepEqual(packagesLoaded(new URL(m, import.meta.url).href), ['commander'], m);
});
