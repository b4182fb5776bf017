// A cloud-init NoCloud seed: an ISO 9660 volume labelled `cidata` holding
// meta-data (instance id, hostname, SSH keys) and user-data, which cloud-init
// in the guest finds by its label. Built with genisoimage, as cloud-localds does.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import type { CloudInit } from './fields.ts';

const run = promisify(execFile);

export function metaData(instanceId: string, hostname: string, keys: readonly string[]): string {
  return stringify({
    'instance-id': instanceId,
    'local-hostname': hostname,
    ...(keys.length > 0 ? { 'public-keys': [...keys] } : {}),
  });
}

/** user-data as given; without any, an empty cloud-config (cloud-init then only applies meta-data). */
export const userData = (c: CloudInit): string => c.userData ?? '#cloud-config\n{}\n';

export async function buildSeed(path: string, instanceId: string, hostname: string, c: CloudInit): Promise<void> {
  const dir = mkdtempSync(`${path}.d-`);
  try {
    writeFileSync(join(dir, 'meta-data'), metaData(instanceId, hostname, c.sshAuthorizedKeys ?? []));
    writeFileSync(join(dir, 'user-data'), userData(c));
    await run('genisoimage', [
      '-quiet',
      '-output',
      path,
      '-volid',
      'cidata',
      '-joliet',
      '-rock',
      join(dir, 'user-data'),
      join(dir, 'meta-data'),
    ]);
  } catch (err) {
    throw new Error(`could not build the cloud-init seed: ${(err as { stderr?: string }).stderr ?? String(err)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
