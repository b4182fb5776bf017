// The agent's identity (host id and credential), kept in its data directory so
// a restarted agent is the same host and never registers a second one.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Identity {
  server: string;
  hostId: string;
  name: string;
  token: string;
}

const FILE = 'identity.json';

export function loadIdentity(dataDir: string): Identity | undefined {
  const file = join(dataDir, FILE);
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as Identity;
}

export function saveIdentity(dataDir: string, id: Identity): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, FILE);
  writeFileSync(`${file}.tmp`, JSON.stringify(id, null, 2), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}
