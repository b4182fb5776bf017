// Waiting for a slow reader without leaking a listener per wait.
import type { Writable } from 'node:stream';

/** Resolves when `s` drains or closes, leaving no listener behind (a stream to a slow reader waits many times; one that closed never drains). */
export function drainedOrClosed(s: Writable): Promise<void> {
  return new Promise(resolve => {
    const done = () => {
      s.off('drain', done);
      s.off('close', done);
      resolve();
    };
    s.once('drain', done);
    s.once('close', done);
  });
}
