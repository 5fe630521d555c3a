/** The milter's unix socket file: its mode, and clearing one left behind (kept light: the supervisor loads it). */
import { lstatSync, rmSync } from 'node:fs';

/** Owner and group may connect (put the MTA's user in the milter's group); nobody else. */
export const UNIX_SOCKET_MODE = 0o660;

/** A socket file left by a milter that did not stop cleanly; anything else at the path is not ours to remove. */
export function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) rmSync(path);
  } catch {
    // Nothing there.
  }
}
