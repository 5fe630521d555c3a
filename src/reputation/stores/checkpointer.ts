/**
 * WAL checkpoints off the event loop. By default SQLite checkpoints inside the commit that
 * pushes the WAL past 1,000 pages; an ingest batch of 2,000 fingerprints in a store of a million
 * dirties ~4,000 random pages, so every batch paid a full checkpoint and its fsync (about 60 of
 * the ~150 ms a batch took, measured with bench/reputation-engine.ts). Here a worker thread
 * with its own connection runs PASSIVE checkpoints on a timer: they copy committed frames while
 * the main connection keeps reading and writing, and the fsyncs wait on that thread.
 *
 * The worker is checkpoint-thread.ts (built: .js beside this file; from sources under tsx,
 * checkpoint-thread.boot.mjs registers tsx first, since a worker thread does not inherit its
 * loader on Node 20).
 */
import { Worker } from 'node:worker_threads';
import type { CheckpointThreadData } from './checkpoint-thread.js';

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


export class Checkpointer {
  readonly #worker: Worker;
  readonly #exited: Promise<void>;

  constructor(path: string, onError: (message: string) => void = () => undefined) {
    const thread = import.meta.url.endsWith('.ts') ? new URL('./checkpoint-thread.boot.mjs', import.meta.url) : new URL('./checkpoint-thread.js', import.meta.url);
    this.#worker = new Worker(thread, { workerData: { path, intervalMs: CHECKPOINT_INTERVAL_MS } satisfies CheckpointThreadData });
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
