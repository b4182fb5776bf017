// --watch: render once, then again whenever the event stream reports a change
// that concerns what is shown. On a terminal in table mode the screen is
// cleared and redrawn; otherwise each new rendering is printed after the last.
// Ctrl-C ends the watch with status 0.
import { ApiError, ConnectError, type Query } from './client.ts';
import type { Ctx } from './common.ts';
import { note, out } from './output.ts';

const DEBOUNCE_MS = 100;
const RECONNECT_MS = 1000;

export function exitOnInterrupt(): void {
  process.once('SIGINT', () => process.exit(0));
}

export async function watch(
  ctx: Ctx,
  filter: { project?: string; resource?: string },
  render: () => Promise<string>,
): Promise<never> {
  exitOnInterrupt();
  const redraw = process.stdout.isTTY === true && ctx.format === 'table';
  let last: string | undefined;
  const draw = (text: string) => {
    if (text === last) return;
    const first = last === undefined;
    last = text;
    if (redraw) {
      const stamp = `Watching for changes; redrawn at ${new Date().toTimeString().slice(0, 8)} (Ctrl-C to stop)`;
      process.stdout.write(`\x1b[2J\x1b[H${stamp}\n\n${text}\n`);
    } else {
      // Successive tables are easier to tell apart with a blank line between them.
      out(first || ctx.format !== 'table' ? text : `\n${text}`);
    }
  };
  draw(await render());

  let timer: NodeJS.Timeout | undefined;
  let busy: Promise<void> = Promise.resolve();
  let failure: unknown;
  let stream = new AbortController();
  const schedule = () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      busy = busy.then(async () => {
        try {
          draw(await render());
        } catch (err) {
          // The watched object went away (deleted): show that and keep watching.
          if (err instanceof ApiError && err.status === 404) draw(`(gone: ${err.message})`);
          else {
            failure = err;
            stream.abort();
          }
        }
      });
    }, DEBOUNCE_MS);
  };

  let since: number | undefined;
  let reconnecting = false;
  const query: Query = { project: filter.project, resource: filter.resource };
  for (;;) {
    try {
      await ctx.client.follow(
        { ...query, since },
        {
          onOpen: () => {
            // Anything may have changed while the stream was down.
            if (reconnecting) schedule();
          },
          onEvent: e => {
            since = e.seq;
            schedule();
          },
        },
        stream.signal,
      );
    } catch (err) {
      if (!(err instanceof ConnectError)) throw err;
      if (!redraw) note(`watch: lost the event stream (${err.message}); reconnecting`);
    }
    reconnecting = true;
    await busy;
    if (failure) throw failure;
    stream = new AbortController();
    await new Promise(r => setTimeout(r, RECONNECT_MS));
  }
}
