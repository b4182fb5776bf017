// WAL checkpoints off the main thread. SQLite's automatic checkpoint runs
// inside whichever commit crosses the threshold and fsyncs the database there,
// stalling the event loop; a worker thread with its own connection checkpoints
// passively every second instead, so commits only append to the WAL.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

const require = createRequire(import.meta.url);

const workerSource = `
const Database = require(process.env.STRATA_BSQ);
const { parentPort, workerData } = require('node:worker_threads');
const db = new Database(workerData.file);
db.pragma('busy_timeout = 1000');
const timer = setInterval(() => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch (err) { parentPort.postMessage(String(err)); }
}, workerData.intervalMs);
parentPort.on('message', (m) => { if (m === 'stop') { clearInterval(timer); db.close(); process.exit(0); } });
`;

export interface Checkpointer {
  stop(): Promise<void>;
}

export function startCheckpointer(file: string, intervalMs = 1000): Checkpointer {
  const worker = new Worker(workerSource, {
    eval: true,
    workerData: { file, intervalMs },
    env: { ...process.env, STRATA_BSQ: require.resolve('better-sqlite3') },
  });
  worker.unref();
  const exited = new Promise<void>(resolve => worker.once('exit', () => resolve()));
  return {
    stop: () => {
      // Handled once the worker is up, if it is still starting; a no-op if it has ended.
      worker.postMessage('stop');
      // Waited for: the process is kept alive until the worker ends.
      worker.ref();
      return exited;
    },
  };
}
