/**
 * WAL checkpoints off the event loop. By default SQLite checkpoints inside the commit that
 * pushes the WAL past 1,000 pages; an ingest batch of 2,000 fingerprints in a store of a million
 * dirties ~4,000 random pages, so every batch paid a full checkpoint and its fsync (about 60 of
 * the ~150 ms a batch took, measured with bench/reputation-engine.ts). Here a worker thread
 * with its own connection runs PASSIVE checkpoints on a timer: they copy committed frames while
 * the main connection keeps reading and writing, and the fsyncs wait on that thread.
 *
 * The worker is plain JavaScript evaluated from a string, so it runs the same from dist/ and
 * under tsx, and needs no file of its own.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** How often an idle worker checkpoints (one of an empty WAL costs next to nothing); a busy one loops. */
export const CHECKPOINT_INTERVAL_MS = 250;

/**
 * WAL pages at which the main connection still checkpoints by itself (256 MB of 4 KB pages): only
 * the frames the worker has not copied yet, then the WAL restarts at the next write. Without it,
 * back-to-back ingest never leaves the worker a moment to catch up and the WAL grows without
 * bound (1.6 GB after 50,000 records). The cap is a trade: each page read looks the page up in
 * one hash table per 4,096 WAL frames, but every forced checkpoint also syncs the database on the
 * ingest path; on a store of a million, 256 MB ingested ~15% more records/s than 64 MB, and
 * 32 MB ~15% fewer (bench/reputation-engine.ts, 2026-11-23).
 */
export const MAIN_AUTOCHECKPOINT_PAGES = 65_536;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 1000');
db.pragma('synchronous = NORMAL');
let timer = null;
let closed = false;
let copied = -1;
// While the main connection keeps writing, checkpoint again at once: the WAL restarts (and stays
// small) only when a checkpoint has caught up with every committed frame before the next write.
function run() {
  timer = null;
  if (closed) return;
  let again = false;
  try {
    const [result] = db.pragma('wal_checkpoint(PASSIVE)');
    // Frames a reader still uses cannot be copied: without progress, wait for the timer.
    again = result.checkpointed < result.log && result.checkpointed !== copied;
    copied = result.checkpointed;
  } catch (error) {
    parentPort.postMessage({ error: String(error && error.message) });
  }
  timer = again ? setImmediate(run) : setTimeout(run, workerData.intervalMs);
}
timer = setTimeout(run, workerData.intervalMs);
parentPort.on('message', () => {
  closed = true;
  if (timer !== null) { clearTimeout(timer); clearImmediate(timer); }
  try { db.close(); } finally { parentPort.close(); }
});
`;

export class Checkpointer {
  readonly #worker: Worker;
  readonly #exited: Promise<void>;

  constructor(path: string, onError: (message: string) => void = () => undefined) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, driver, intervalMs: CHECKPOINT_INTERVAL_MS } });
    // Never keeps a CLI command or a test alive: close() stops it, process exit ends it.
    this.#worker.unref();
    this.#worker.on('message', (m: { error?: string }) => {
      if (m.error !== undefined) onError(m.error);
    });
    this.#exited = new Promise((resolve) => {
      this.#worker.once('exit', () => resolve());
      this.#worker.once('error', (error) => {
        onError(error.message);
        resolve();
      });
    });
  }

  /** Stops the timer and closes the worker's connection. */
  async close(): Promise<void> {
    // Referenced again while it shuts down, or a process with nothing else to do would exit
    // before the connection is closed (and an awaited close would never settle).
    this.#worker.ref();
    this.#worker.postMessage('close');
    await this.#exited;
  }
}
