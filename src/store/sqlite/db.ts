// Opens the embedded store (SQLite in WAL mode through Kysely) and brings its
// schema up to date.
import { existsSync, mkdirSync } from 'node:fs';
import { ensurePrivateFile } from '../../lib/private-dir.ts';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect, type SqliteDatabase } from 'kysely';
import { Migrator } from 'kysely/migration';
import { startCheckpointer, type Checkpointer } from './checkpointer.ts';
import { migrationProvider } from '../migrations.ts';
import type { Database } from '../schema.ts';
import type { Db } from '../store.ts';

export interface OpenOptions {
  /** Path of the SQLite file, or ':memory:'. */
  file: string;
  /**
   * 'full' fsyncs every commit (survives power loss); 'normal' fsyncs at WAL
   * checkpoints (survives any process crash, the default).
   */
  synchronous?: 'full' | 'normal';
}

export interface OpenDatabase {
  db: Db;
  /**
   * Closes the connection, then waits for the checkpoint worker to end. A
   * worker still loading SQLite's native module when the process exits
   * aborts the whole process (a fatal N-API error), so it is waited for.
   */
  close(): Promise<void>;
}

export async function openDatabase(opts: OpenOptions): Promise<OpenDatabase> {
  if (opts.file !== ':memory:') {
    mkdirSync(dirname(opts.file), { recursive: true, mode: 0o700 });
    // The store holds instances' environment: readable by this user only.
    for (const f of [opts.file, `${opts.file}-wal`, `${opts.file}-shm`])
      if (f === opts.file || existsSync(f)) ensurePrivateFile(f);
  }
  const sqlite = new SQLite(opts.file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma(`synchronous = ${opts.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  let checkpointer: Checkpointer | undefined;
  if (opts.file !== ':memory:') {
    // A safety net only: the checkpointer keeps the WAL far below this.
    sqlite.pragma('wal_autocheckpoint = 20000');
    checkpointer = startCheckpointer(opts.file);
  }
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
  const close = async () => {
    await db.destroy();
    await checkpointer?.stop();
  };
  try {
    await migrate(db);
  } catch (err) {
    await close();
    throw err;
  }
  return { db, close };
}

const STATEMENT_CACHE_SIZE = 1000;

/**
 * Kysely prepares every query anew, which is most of the cost of a point read
 * on SQLite. Queries are built from a small set of shapes, so their prepared
 * statements are kept and reused, keyed by SQL text.
 */
function withStatementCache(sqlite: SQLite.Database): SqliteDatabase {
  const cache = new Map<string, SQLite.Statement>();
  return {
    prepare(sql: string) {
      let stmt = cache.get(sql);
      if (!stmt) {
        if (cache.size >= STATEMENT_CACHE_SIZE) cache.clear();
        stmt = sqlite.prepare(sql);
        cache.set(sql, stmt);
      }
      return stmt;
    },
    close() {
      cache.clear();
      sqlite.close();
    },
  };
}

export async function migrate(db: Db): Promise<void> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find(r => r.status === 'Error');
  if (error || failed) {
    throw new Error(`store migration ${failed?.migrationName ?? ''} failed: ${String(error)}`);
  }
}
