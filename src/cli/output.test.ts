import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import Table from 'cli-table3';
import fc from 'fast-check';
import { table } from './output.ts';

/** The table as cli-table3 draws it with output.ts's settings. */
function drawn(headers: string[], rows: string[][]): string {
  const none = ['top', 'top-mid', 'top-left', 'top-right', 'bottom', 'bottom-mid', 'bottom-left', 'bottom-right'];
  const chars = Object.fromEntries(
    [...none, 'left', 'left-mid', 'mid', 'mid-mid', 'right', 'right-mid'].map(k => [k, '']),
  );
  const t = new Table({
    head: headers,
    chars: { ...chars, middle: '   ' },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0, compact: true },
  });
  for (const r of rows) t.push(r.map(c => (c === '' ? '-' : c)));
  return t
    .toString()
    .split('\n')
    .map(l => l.trimEnd())
    .join('\n');
}

test('a table of one-column characters is laid out as cli-table3 lays it out', async () => {
  const text = fc.stringMatching(/^[ -~→]{0,12}$/);
  await fc.assert(
    fc.asyncProperty(
      fc
        .integer({ min: 1, max: 5 })
        .chain(n =>
          fc.tuple(
            fc.array(text, { minLength: n, maxLength: n }),
            fc.array(fc.array(text, { minLength: n, maxLength: n }), { maxLength: 5 }),
          ),
        ),
      async ([headers, rows]) => assert.equal(await table(headers, rows), drawn(headers, rows)),
    ),
    { numRuns: 500 },
  );
});

test('wide characters, emoji and line breaks are measured by cli-table3', async () => {
  const rows = [
    ['web', '日本語', 'ok'],
    ['db', '🚀 x', 'two\nlines'],
    ['-', 'tab\there', 'é'],
  ];
  assert.equal(await table(['NAME', 'NOTE', 'STATE'], rows), drawn(['NAME', 'NOTE', 'STATE'], rows));
  assert.equal(
    await table(
      ['NAME', 'STATE'],
      [
        ['web', 'pending (→stopped)'],
        ['db', null as unknown as string],
      ],
    ),
    'NAME   STATE\nweb    pending (→stopped)\ndb     -',
  );
});
