/**
 * Opens a SQLite connection's shared-file settings the same way everywhere: a busy timeout, then
 * WAL. Switching a fresh file to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY
 * there without calling the busy handler; gateway workers open the same files at the same moment
 * (about 1 start in 10 failed with "database is locked"), so the switch is retried here.
 */
import type Database from 'better-sqlite3';

const BUSY_TIMEOUT_MS = 5000;
const RETRY_PAUSE_MS = 10;

export function useWal(db: Database.Database): void {
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw error;
      // Synchronous like the rest of the open: nothing else may use this connection meanwhile.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, RETRY_PAUSE_MS);
    }
  }
}
