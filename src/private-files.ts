/**
 * What Nimbus keeps on disk (statistics, reputation, samples of attachments, quarantined and
 * spooled mail) is for its own user only: every SQLite file it creates is 0600 and every
 * directory 0700, whatever the umask (outside systemd it is usually 022, which gave 0644 files
 * and 0755 directories). better-sqlite3 creates a database file 0644 minus the umask, and SQLite
 * gives its -wal, -shm and -journal files the mode of the database file, so the database file is
 * created here, empty and 0600, before SQLite opens it.
 *
 * Files and directories that already exist keep their mode: an administrator may have widened
 * one on purpose (a group that reads the data directory for backups), and a restart is no time
 * to take that away. `chmod -R go= DATA_DIR` tightens an older installation.
 */
import { chmodSync, closeSync, constants, fchmodSync, mkdirSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';

export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

/** `mkdir -p` whose every created directory is exactly 0700 (mkdir's mode passes through the umask). */
export function makePrivateDir(dir: string): void {
  const first = mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (first === undefined) return;
  const top = resolve(first);
  for (let current = resolve(dir); ; current = dirname(current)) {
    chmodSync(current, PRIVATE_DIR_MODE);
    if (current === top || dirname(current) === current) return;
  }
}

/** Creates `path` empty and exactly 0600, unless it exists (then it is left as it is). */
export function createPrivateFile(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, PRIVATE_FILE_MODE);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw error;
  }
  try {
    fchmodSync(fd, PRIVATE_FILE_MODE);
  } finally {
    closeSync(fd);
  }
}

/**
 * A SQLite database in a private directory and a private file (its side files follow the file's
 * mode). An empty file is a valid empty database, so workers racing to create it are fine.
 */
export function openPrivateDatabase(path: string, options?: Database.Options): Database.Database {
  makePrivateDir(dirname(path));
  createPrivateFile(path);
  return new Database(path, options);
}
