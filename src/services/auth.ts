// Bearer-token authentication. Tokens are random secrets; the store keeps only
// their SHA-256 (a fast hash is right for 256-bit random secrets: there is
// nothing to brute-force). Resolved principals are cached briefly and the cache
// is dropped on any change to users, memberships or tokens.
import { createHash, randomBytes } from 'node:crypto';
import { ApiError } from '../lib/errors.ts';
import type { Role } from '../model/kinds.ts';
import { hostName } from '../store/hosts.ts';
import type { Store } from '../store/store.ts';
import { findTokenByHash } from '../store/tokens.ts';
import { findUserById, rolesOf } from '../store/users.ts';

export interface UserPrincipal {
  kind: 'user';
  userId: string;
  name: string;
  clusterAdmin: boolean;
  /** project id -> role */
  roles: Map<string, Role>;
  tokenId: string;
  /** When the token presented expires (ISO time), or null. */
  expiresAt: string | null;
}

export interface AgentPrincipal {
  kind: 'agent';
  hostId: string;
  name: string;
  tokenId: string;
  expiresAt: string | null;
}

export type Principal = UserPrincipal | AgentPrincipal;

export function newSecret(prefix: 'stk' | 'sjt'): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

const CACHE_TTL_MS = 5_000;
export const authEventPrefixes = ['user.', 'token.', 'member.', 'project.deleted', 'host.deleted'];
export const changesAccess = (type: string): boolean => authEventPrefixes.some(p => type.startsWith(p));

export class Authenticator {
  private readonly cache = new Map<string, { principal: Principal; until: number }>();
  private readonly store: Store;

  constructor(store: Store) {
    this.store = store;
    store.onEvent(e => {
      if (changesAccess(e.type)) this.cache.clear();
    });
  }

  async authenticate(header: string | undefined): Promise<Principal> {
    if (!header) throw new ApiError('unauthenticated', 'missing Authorization: Bearer <token> header');
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match?.[1]) throw new ApiError('unauthenticated', 'Authorization header must be "Bearer <token>"');
    const hash = hashSecret(match[1]);
    const cached = this.cache.get(hash);
    const t = Date.now();
    if (cached && cached.until > t) return cached.principal;
    const principal = await this.load(hash);
    if (!principal) throw new ApiError('unauthenticated', 'invalid or expired token');
    if (this.cache.size > 10_000) this.cache.clear();
    // A cached token still expires on time.
    const expires = principal.expiresAt ? Date.parse(principal.expiresAt) : Number.POSITIVE_INFINITY;
    this.cache.set(hash, { principal, until: Math.min(t + CACHE_TTL_MS, expires) });
    return principal;
  }

  private async load(hash: string): Promise<Principal | undefined> {
    const db = this.store.db;
    const token = await findTokenByHash(db, hash);
    if (!token) return undefined;
    if (token.expires_at && token.expires_at <= new Date().toISOString()) return undefined;
    if (token.host_id) {
      const name = await hostName(db, token.host_id);
      return name !== undefined
        ? { kind: 'agent', hostId: token.host_id, name, tokenId: token.id, expiresAt: token.expires_at }
        : undefined;
    }
    if (!token.user_id) return undefined;
    const user = await findUserById(db, token.user_id);
    if (!user) return undefined;
    return {
      kind: 'user',
      userId: user.id,
      name: user.name,
      clusterAdmin: user.cluster_admin === 1,
      roles: await rolesOf(db, user.id),
      tokenId: token.id,
      expiresAt: token.expires_at,
    };
  }
}
