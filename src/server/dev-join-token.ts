// `strata dev`'s join token for its local agent.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashSecret } from '../services/auth.ts';
import { createJoinToken } from '../services/join-tokens.ts';
import { findJoinTokenByHash } from '../store/join-tokens.ts';
import type { Store } from '../store/store.ts';

const JOIN_TOKEN_FILE = 'dev-join.token';

/** The dev join token survives restarts so the local agent can always (re)join. */
export async function devJoinToken(store: Store, dataDir: string): Promise<string> {
  const file = join(dataDir, JOIN_TOKEN_FILE);
  if (existsSync(file)) {
    const secret = readFileSync(file, 'utf8').trim();
    if (await findJoinTokenByHash(store.db, hashSecret(secret))) return secret;
  }
  const { secret } = await createJoinToken(store, 'dev', { description: 'strata dev local agent' });
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}
