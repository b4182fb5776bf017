// First start: a cluster admin, its token in DATA/admin.token (0600), and a
// `default` project it administers, so a fresh install is usable at once.
import { writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { hashSecret, newSecret } from './auth.ts';
import { insertMembership, insertProject, newProjectRow } from '../store/projects.ts';
import { insertToken } from '../store/tokens.ts';
import { anyUser, insertUser } from '../store/users.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import type { Store } from '../store/store.ts';

export const ADMIN_TOKEN_FILE = 'admin.token';

export async function bootstrap(store: Store, dataDir: string): Promise<{ created: boolean; tokenFile: string }> {
  const tokenFile = join(dataDir, ADMIN_TOKEN_FILE);
  if (await anyUser(store.db)) return { created: false, tokenFile };
  const secret = newSecret('stk');
  // The file is written before the commit: a crash in between leaves a token
  // that matches nothing, and the next start (still no users) writes a new one.
  const tmp = `${tokenFile}.tmp`;
  writeFileSync(tmp, `${secret}\n`, { mode: 0o600 });
  renameSync(tmp, tokenFile);
  await store.write(async ({ trx, emit }) => {
    const t = now();
    const userId = newId('usr');
    const projectId = newId('prj');
    await insertUser(trx, { id: userId, name: 'admin', cluster_admin: 1, created_at: t });
    await insertToken(trx, {
      id: newId('tok'),
      name: 'bootstrap',
      hash: hashSecret(secret),
      user_id: userId,
      host_id: null,
      created_at: t,
      expires_at: null,
    });
    await insertProject(trx, newProjectRow(projectId, 'default', t, { description: 'created at first start' }));
    await insertMembership(trx, { project_id: projectId, user_id: userId, role: 'admin', created_at: t });
    emit({
      type: 'user.created',
      projectId: null,
      resourceType: 'user',
      resourceId: userId,
      actor: 'bootstrap',
      data: { name: 'admin' },
    });
    emit({
      type: 'project.created',
      projectId,
      resourceType: 'project',
      resourceId: projectId,
      actor: 'bootstrap',
      data: { name: 'default' },
    });
  });
  return { created: true, tokenFile };
}
