// A long-lived stream outlives the request that opened it: when access
// changes (a token revoked, a role removed, a user deleted) or the token
// expires, the caller is authenticated again, and the stream is ended once it
// may no longer do what it does.
import type { Role } from '../model/kinds.ts';
import type { Store } from '../store/store.ts';
import { changesAccess, type Authenticator, type UserPrincipal } from '../services/auth.ts';
import { requireRole, requireUser } from '../services/access.ts';

export interface AccessWatch {
  /** The caller as last authenticated. */
  principal(): UserPrincipal;
  stop(): void;
}

/**
 * Watches `header`'s access to `projectId` with `role` (any project the
 * caller reads, when undefined) and calls `lost` once when it is gone.
 */
export function watchAccess(
  deps: { store: Store; authenticator: Authenticator },
  header: string | undefined,
  first: UserPrincipal,
  need: { projectId?: string | undefined; role?: Role },
  lost: () => void,
): AccessWatch {
  let p = first;
  let done = false;
  const check = async () => {
    if (done) return;
    try {
      const again = requireUser(await deps.authenticator.authenticate(header));
      if (need.projectId !== undefined) requireRole(again, need.projectId, need.role ?? 'reader');
      p = again;
    } catch {
      if (done) return;
      stop();
      lost();
    }
  };
  const off = deps.store.onEvent(e => {
    if (changesAccess(e.type)) void check();
  });
  // A little after the expiry, so the check sees the token as expired
  // (timers reach 24 days; a stream open that long is checked on changes only).
  const wait = p.expiresAt ? Math.max(0, Date.parse(p.expiresAt) - Date.now()) + 10 : undefined;
  const expiry = wait !== undefined && wait < 2 ** 31 - 1 ? setTimeout(() => void check(), wait) : undefined;
  expiry?.unref();
  const stop = () => {
    done = true;
    off();
    clearTimeout(expiry);
  };
  return { principal: () => p, stop };
}
