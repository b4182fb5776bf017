// A dry run: a write carried out in full (every check, every query) and then
// rolled back, so it answers exactly what the write would, stores nothing and
// emits nothing.
import type { Store, WriteContext } from '../store/store.ts';

class Rehearsed<T> extends Error {
  readonly value: T;
  constructor(value: T) {
    super('a dry run is rolled back');
    this.value = value;
  }
}

/** `store.write(fn)`, or with `dryRun` what it would answer, nothing kept. */
export async function writeOrRehearse<T>(
  store: Store,
  dryRun: boolean,
  fn: (ctx: WriteContext) => Promise<T>,
): Promise<T> {
  if (!dryRun) return store.write(fn);
  try {
    await store.write(async ctx => {
      throw new Rehearsed(await fn(ctx));
    });
  } catch (err) {
    if (err instanceof Rehearsed) return err.value as T;
    throw err;
  }
  throw new Error('a dry run ended without its answer');
}
