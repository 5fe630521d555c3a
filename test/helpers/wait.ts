/**
 * The one way tests wait: for a condition to hold (a file, a log line, a counter, a status), never
 * for wall-clock time to pass. To show that something did NOT happen, wait for the event after
 * which it could no longer happen (the process exited, the queue is empty and every session
 * closed, the observer was entered) and check then, rather than sleeping and hoping.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

/** What a condition returns: a value once it holds; undefined, null or false while it does not. */
type Pending = undefined | null | false;

/**
 * Resolves with the condition's first value that is not undefined, null or false; throws naming
 * `what` after `timeoutMs`. The condition may be async (an HTTP request, a CLI run): it is never
 * run twice at once.
 */
export async function waitFor<T>(what: string, condition: () => T | Pending | Promise<T | Pending>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(POLL_MS);
  }
}

/** Often enough that a test does not idle, rarely enough that polling costs nothing on a shared machine. */
const POLL_MS = 50;

/** Waits until `dir` holds `count` files (not directories) and returns their paths, sorted. */
export async function waitForFiles(dir: string, count: number, timeoutMs = 30_000): Promise<string[]> {
  return waitFor(`${count} file(s) in ${dir}`, () => {
    if (!existsSync(dir)) return undefined;
    const files = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(dir, e.name)).sort();
    return files.length >= count ? files : undefined;
  }, timeoutMs);
}
