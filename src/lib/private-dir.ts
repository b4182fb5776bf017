// Directories that hold secrets (the server's store and admin token, an
// agent's credential): private to the user Strata runs as.
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';

/**
 * Makes `dir` (0700) or checks the one that is there: it must belong to this
 * user and no one else may write to it, or another local user could swap the
 * files inside. One that others may only read is closed (0700).
 */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid)
    throw new Error(
      `data directory ${dir} belongs to uid ${st.uid}, not to this user (uid ${uid}); give Strata a directory of its own`,
    );
  if (st.mode & 0o022) {
    throw new Error(
      `data directory ${dir} can be written by others (mode ${(st.mode & 0o777).toString(8)}); make it private first: chmod 700 ${dir}`,
    );
  }
  if (st.mode & 0o077) chmodSync(dir, 0o700);
}

/** Creates `file` if missing and makes it 0600 (SQLite gives its -wal and -shm files the database file's mode). */
export function ensurePrivateFile(file: string): void {
  if (!existsSync(file)) closeSync(openSync(file, 'a', 0o600));
  chmodSync(file, 0o600);
}
