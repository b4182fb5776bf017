import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { OutputChunk } from '../driver.ts';
import { demux } from './demux.ts';

const header = (type: number, size: number) => {
  const h = Buffer.alloc(8);
  h[0] = type;
  h.writeUInt32BE(size, 4);
  return h;
};

async function collect(chunks: Buffer[]): Promise<OutputChunk[]> {
  async function* src() {
    yield* chunks;
  }
  const out: OutputChunk[] = [];
  for await (const c of demux(src())) out.push(c);
  return out;
}

test('demux splits stdout and stderr frames, whatever the read boundaries', async () => {
  const whole = Buffer.concat([
    header(1, 5),
    Buffer.from('hello'),
    header(2, 4),
    Buffer.from('oops'),
    header(1, 0),
    header(1, 1),
    Buffer.from('!'),
  ]);
  for (const cut of [1, 3, 7, 8, 9, 13, 14, 20, whole.length - 1]) {
    const got = await collect([whole.subarray(0, cut), whole.subarray(cut)]);
    assert.deepEqual(
      got.map(c => [c.stream, c.data.toString()]),
      [
        ['stdout', 'hello'],
        ['stderr', 'oops'],
        ['stdout', '!'],
      ],
      `cut at ${cut}`,
    );
  }
});

test('demux holds back an incomplete frame', async () => {
  const got = await collect([Buffer.concat([header(1, 10), Buffer.from('short')])]);
  assert.deepEqual(got, []);
});
