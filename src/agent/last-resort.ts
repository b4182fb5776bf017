// The agent's last line of defence: an error nobody caught (an 'error' event
// without a listener, a rejected promise nobody awaited) in the work for one
// instance fails that instance and leaves the agent running. Work is tagged
// with its instance through AsyncLocalStorage, whose context follows timers,
// promises and I/O callbacks, so the process-wide handlers know whose it was.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from 'pino';

export interface Scope {
  instance: string;
  /** A user's stream (logs, exec, console): its failure ends the stream, not the instance. */
  stream?: boolean;
}

export const scope = new AsyncLocalStorage<Scope>();

/**
 * Installs the process-wide handlers. An error outside any instance's work is
 * the agent's own: it is logged and the process exits, to be restarted by its
 * supervisor with its state intact (instances keep running).
 */
export function installLastResort(onInstanceError: (s: Scope, err: unknown) => void, log: Logger): void {
  const handle = (how: string) => (err: unknown) => {
    const s = scope.getStore();
    const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
    if (!s) {
      log.fatal({ err: detail, how }, 'unexpected error in the agent itself; exiting');
      process.exit(70);
    }
    log.error(
      { err: detail, how, instance: s.instance, stream: s.stream ?? false },
      'unexpected error while handling an instance; the agent carries on',
    );
    try {
      onInstanceError(s, err);
    } catch (e) {
      log.error({ err: String(e), instance: s.instance }, 'could not act on an unexpected error');
    }
  };
  process.on('uncaughtException', handle('uncaught exception'));
  process.on('unhandledRejection', handle('unhandled rejection'));
}
