/**
 * The checkpoint worker thread (see checkpointer.ts): its own connection to the SQLite file, PASSIVE
 * checkpoints on a timer, and at once again while the main connection keeps writing.
 */
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';

export interface CheckpointThreadData {
  readonly path: string;
  readonly intervalMs: number;
}

const port = parentPort;
if (!port) throw new Error('checkpoint-thread runs only as a worker thread');
const { path, intervalMs } = workerData as CheckpointThreadData;

const db = new Database(path);
db.pragma('busy_timeout = 1000');
db.pragma('synchronous = NORMAL');
let timer: NodeJS.Timeout | NodeJS.Immediate | null = null;
let closed = false;
let copied = -1;

// While the main connection keeps writing, checkpoint again at once: the WAL restarts (and stays
// small) only when a checkpoint has caught up with every committed frame before the next write.
function run(): void {
  timer = null;
  if (closed) return;
  let again = false;
  try {
    const [result] = db.pragma('wal_checkpoint(PASSIVE)') as { checkpointed: number; log: number }[];
    // Frames a reader still uses cannot be copied: without progress, wait for the timer.
    again = result!.checkpointed < result!.log && result!.checkpointed !== copied;
    copied = result!.checkpointed;
  } catch (error) {
    port!.postMessage({ error: String((error as Error | null)?.message) });
  }
  timer = again ? setImmediate(run) : setTimeout(run, intervalMs);
}

timer = setTimeout(run, intervalMs);
port.on('message', () => {
  closed = true;
  if (timer !== null) {
    clearTimeout(timer as NodeJS.Timeout);
    clearImmediate(timer as NodeJS.Immediate);
  }
  try {
    db.close();
  } finally {
    port.close();
  }
});
