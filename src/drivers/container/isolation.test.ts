import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { NftIsolation } from './isolation.ts';

/** A stand-in for nft that keeps the chain's rules and answers listings as nft does. */
function fakeNft() {
  const rules = new Map<number, string>();
  let next = 1;
  const calls: string[][] = [];
  const run = async (args: string[]): Promise<string> => {
    calls.push(args);
    if (args[0] === '-a') return [...rules].map(([h, r]) => `\t\t${r} # handle ${h}`).join('\n');
    if (args[0] === 'add' && args[1] === 'rule') rules.set(next++, args.slice(5).join(' '));
    if (args[0] === 'delete') rules.delete(Number(args.at(-1)));
    return '';
  };
  return { run, rules, calls };
}

test('a bridge is guarded by one rule, dropped when released; names nft could misread are refused', async () => {
  const nft = fakeNft();
  const iso = new NftIsolation(nft.run);
  await iso.guard('stabc');
  await iso.guard('stabc');
  await iso.guard('stdef');
  assert.deepEqual(
    [...nft.rules.values()],
    [
      'iifname "stabc" oifname != "stabc" oifname "st*" drop comment "stabc"',
      'iifname "stdef" oifname != "stdef" oifname "st*" drop comment "stdef"',
    ],
  );
  // The table and chain are made once.
  assert.equal(nft.calls.filter(c => c[1] === 'chain').length, 1);
  await iso.release('stabc');
  assert.deepEqual([...nft.rules.values()], ['iifname "stdef" oifname != "stdef" oifname "st*" drop comment "stdef"']);
  await assert.rejects(iso.guard('st"; flush ruleset'), /not an interface name/);
  await assert.rejects(iso.guard('a-name-longer-than-15'), /not an interface name/);
});

test('a sweep drops the rules of bridges that are gone, and only those', async () => {
  const nft = fakeNft();
  const iso = new NftIsolation(nft.run);
  await iso.guard('stgone');
  await iso.guard('stlive');
  await iso.sweep(async () => {
    // A bridge guarded after the rules were read is not in this answer, and its rule stays.
    await iso.guard('stnew');
    return new Set(['stlive']);
  });
  assert.deepEqual(
    [...nft.rules.values()].map(r => r.split(' ')[1]),
    ['"stlive"', '"stnew"'],
  );
});
