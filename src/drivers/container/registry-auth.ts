// Registry credentials for pulls, read from a Docker/Podman auth file
// ({"auths": {"registry:5000": {"auth": base64("user:password")}}}, what
// `docker login` and `podman login` write). Credentials go to the runtime with
// each pull and are never logged or reported.
import { readFileSync } from 'node:fs';
import { registryOf } from './image-ref.ts';

export interface AuthConfig {
  username: string;
  password: string;
  serveraddress: string;
}

interface AuthFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string }>;
}

/** Docker Hub is keyed by its legacy URL in most files. */
const aliases: Record<string, string[]> = {
  'docker.io': ['docker.io', 'index.docker.io', 'https://index.docker.io/v1/', 'registry-1.docker.io'],
};

export class RegistryAuth {
  private readonly entries = new Map<string, AuthConfig>();

  constructor(file?: AuthFile) {
    for (const [key, v] of Object.entries(file?.auths ?? {})) {
      const host = key.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
      let username = v.username;
      let password = v.password;
      if (v.auth) {
        const plain = Buffer.from(v.auth, 'base64').toString('utf8');
        const i = plain.indexOf(':');
        if (i > 0) [username, password] = [plain.slice(0, i), plain.slice(i + 1)];
      }
      if (username !== undefined && password !== undefined)
        this.entries.set(host, { username, password, serveraddress: host });
    }
  }

  static load(path: string): RegistryAuth {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new Error(`cannot read the registry auth file ${path}: ${(err as Error).message}`);
    }
    try {
      return new RegistryAuth(JSON.parse(text) as AuthFile);
    } catch {
      throw new Error(
        `the registry auth file ${path} is not JSON like {"auths": {"REGISTRY": {"auth": "BASE64(user:password)"}}}`,
      );
    }
  }

  /** Credentials for the registry of an image reference, if any. */
  forImage(ref: string): AuthConfig | undefined {
    const registry = registryOf(ref);
    for (const key of aliases[registry] ?? [registry]) {
      const hit = this.entries.get(key.replace(/^https?:\/\//, '').replace(/\/.*$/, ''));
      if (hit) return hit;
    }
    return undefined;
  }

  get size(): number {
    return this.entries.size;
  }
}
