import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import { parse, stringify } from 'yaml';
import { parseWords, readYaml } from './config-yaml.ts';

/** parseWords either declines or agrees with the library, including on what the library refuses. */
function agrees(text: string): void {
  const fast = parseWords(text);
  if (fast === undefined) return;
  let lib: unknown;
  try {
    lib = parse(text);
  } catch (err) {
    assert.fail(`the library refuses ${JSON.stringify(text)} (${(err as Error).message}) but parseWords read it`);
  }
  assert.deepEqual(fast, lib, `text: ${JSON.stringify(text)}`);
}

test('the config file as the CLI writes it is read without the library, to the same value', () => {
  const cfg = {
    currentContext: 'dev',
    contexts: {
      dev: { url: 'http://127.0.0.1:7070', token: 'stk_a-B_c9', project: 'default' },
      'lab-1': { url: 'https://10.0.0.5:7070/strata', token: 'stk_-x_' },
    },
  };
  const text = stringify(cfg);
  assert.deepEqual(parseWords(text), cfg);
  assert.deepEqual(readYaml(text), cfg);
});

test('anything beyond plain words goes to the library', () => {
  for (const text of [
    '',
    'a: 1\n',
    'a: true\n',
    'a: null\n',
    'a: "quoted"\n',
    'a: b # comment\n',
    '# comment\na: b\n',
    'a:\n  - b\n',
    'a: b\na: c\n',
    'a: {b: c}\n',
    'a:\tb\n',
    'a: b\r\n',
    '---\na: b\n',
    'a:\n    b: c\n  d: e\n',
    ' a: b\n',
    'a: b:\n',
    'null: b\n',
    '__proto__: b\n',
  ]) {
    assert.equal(parseWords(text), undefined, JSON.stringify(text));
    agrees(text);
  }
  assert.deepEqual(readYaml('a: 1 # one\n'), { a: 1 });
  assert.deepEqual(readYaml('a:\nb: c\n'), { a: null, b: 'c' });
});

test('parseWords agrees with the library on generated documents', () => {
  const word = fc.stringMatching(/^[A-Za-z_~:#"' .@/=+%-]{0,6}[A-Za-z0-9:]{0,3}$/);
  const value: fc.Arbitrary<unknown> = fc.letrec(tie => ({
    node: fc.oneof({ depthSize: 'small' }, word, fc.constant(null), tie('map')),
    map: fc.dictionary(word, tie('node'), { maxKeys: 4 }),
  })).map;
  fc.assert(
    fc.property(value, v => {
      let text: string;
      try {
        text = stringify(v);
      } catch {
        return;
      }
      agrees(text);
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 4 }), word, fc.option(word)), { maxLength: 8 }), lines =>
      agrees(lines.map(([n, k, v]) => `${' '.repeat(n)}${k}:${v === null ? '' : ` ${v}`}`).join('\n')),
    ),
    { numRuns: 2000 },
  );
});
