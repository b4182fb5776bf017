// An in-memory stream of output chunks: written by a simulated workload or
// process, read once as an async iterable that ends when the pipe is ended.
import type { OutputChunk } from '../driver.ts';

export class Pipe implements AsyncIterable<OutputChunk> {
  private readonly queued: OutputChunk[] = [];
  private wake: (() => void) | undefined;
  private ended = false;

  push(chunk: OutputChunk): void {
    if (this.ended) return;
    this.queued.push(chunk);
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  get isEnded(): boolean {
    return this.ended;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<OutputChunk> {
    for (;;) {
      const next = this.queued.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>(resolve => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

export const line = (stream: OutputChunk['stream'], text: string): OutputChunk => ({
  stream,
  data: Buffer.from(`${text}\n`),
});
