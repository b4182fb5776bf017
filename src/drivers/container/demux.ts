// The Docker Engine API's multiplexed stream (logs and exec without a TTY):
// frames of an 8-byte header [stream, 0, 0, 0, size (u32 big-endian)] then
// `size` bytes. Stream 1 is stdout, 2 stderr (0, stdin, is written as stdout).
import type { OutputChunk } from '../driver.ts';

export async function* demux(stream: AsyncIterable<Buffer | string>): AsyncIterable<OutputChunk> {
  let buf: Buffer = Buffer.alloc(0);
  for await (const chunk of stream) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    buf = buf.length === 0 ? b : Buffer.concat([buf, b]);
    while (buf.length >= 8) {
      const size = buf.readUInt32BE(4);
      if (buf.length < 8 + size) break;
      const type = buf[0];
      // A copy, so one retained chunk does not pin the whole read buffer.
      const data = Buffer.from(buf.subarray(8, 8 + size));
      buf = buf.subarray(8 + size);
      if (size > 0) yield { stream: type === 2 ? 'stderr' : 'stdout', data };
    }
  }
}
