/** Temp dirs under the system's temp dir (os.tmpdir(), so TMPDIR is honoured): never a fixed path. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';

/** A fresh temp dir; the caller removes it. */
export function tempDir(prefix = 'nimbus-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A fresh temp dir removed at the test's teardown. */
export function testDir(t: Pick<ExecutionContext, 'teardown'>, prefix = 'nimbus-test-'): string {
  const dir = tempDir(prefix);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
