/**
 * Upload claims on statistics batches are shared by the gateway's workers through the data dir:
 * a claim of an uploader that no longer runs may be taken over.
 */
import { existsSync, readFileSync } from 'node:fs';

/**
 * Whether the uploader `owner` (`pid/random`, see Uploader) may still be sending its batch. Same
 * pid: another Statistics of this very process, alive. Other pid: alive unless the OS says no such
 * process (a worker killed with -9); the data dir is local, so its writers are on this host.
 */
export function ownerAlive(owner: string): boolean {
  const pid = Number(owner.slice(0, owner.indexOf('/')));
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A killed worker stays a zombie until it is reaped, and signal 0 still reaches a zombie.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    // Gone since the signal, or no /proc at all (not Linux): then trust the signal.
    return !existsSync('/proc/self/stat');
  }
}
