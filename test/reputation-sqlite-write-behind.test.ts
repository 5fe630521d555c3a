/**
 * The SQLite store as the reputation service opens it (write-behind, src/reputation/stores/
 * sqlite-write-behind.ts): acknowledged reports survive a crash and are counted once, one
 * writer per file, and rows reach the file on their own. The behaviours shared with every store
 * run in reputation-engine-contract.test.ts (backend `sqlite-write-behind`).
 */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { openReputation } from '../src/reputation/open.js';
import { FLUSH_AFTER_MS, FLUSH_AT_ROWS, FLUSH_SLICE_ROWS } from '../src/reputation/stores/sqlite-write-behind.js';
import { waitFor } from './helpers/wait.js';
import { WRITE_BEHIND_NOW, freshItem, writeBehindBatch } from './helpers/write-behind.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'nimbus-write-behind-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));
let files = 0;
const freshPath = () => path.join(tmp, `r${++files}.sqlite`);

/** Fresh fingerprints per batch in the crash test: a flush starts after FLUSH_AT_ROWS / FRESH batches. */
const FRESH = 2000;

/**
 * Runs the child until it dies: killed by this test after `acked <killAfter>`, or by itself
 * right after its `crashAtSlice`-th flush slice. Returns the last ack read (a lower bound: the
 * child may have gone on a little before the kill landed).
 */
type Stop = { killAfter: number } | { crashAtSlice: number };

async function ingestUntilKilled(file: string, common: string, stop: Stop, firstBatch = 1): Promise<number> {
  const child = spawn(process.execPath, ['--import=tsx', 'test/helpers/write-behind-child.ts'], {
    env: { PATH: process.env.PATH ?? '', WB_PATH: file, WB_COMMON: common, WB_FRESH: String(FRESH), WB_CRASH_AT_SLICE: String('crashAtSlice' in stop ? stop.crashAtSlice : 0), WB_FIRST: String(firstBatch) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  let acked = 0;
  for await (const line of createInterface({ input: child.stdout })) {
    const m = /^acked (\d+)$/.exec(line);
    if (m) acked = Number(m[1]);
    if ('killAfter' in stop && acked >= stop.killAfter) {
      child.kill('SIGKILL');
      break;
    }
  }
  if ((await exited) !== 'SIGKILL') throw new Error('the child did not die of SIGKILL');
  return acked;
}

// Killed before the first flush; and right after a flush slice, in the first flush and in a
// later one, so that recovery meets journal rows whose fingerprints are on disk already (which
// must not count again) beside ones that are not.
const stops: Stop[] = [{ killAfter: 3 }, { crashAtSlice: 1 }, { crashAtSlice: FLUSH_AT_ROWS / FLUSH_SLICE_ROWS + 3 }];
for (const stop of stops) {
  const when = 'killAfter' in stop ? `after ${stop.killAfter} acknowledged batches` : `right after flush slice ${stop.crashAtSlice}`;
  test(`reports acknowledged before a SIGKILL ${when} are all counted after restart, each once`, async (t) => {
    const file = freshPath();
    const common = 'url:sha256:wb-common';
    const acked = await ingestUntilKilled(file, common, stop);
    t.true(acked >= ('killAfter' in stop ? stop.killAfter : 1));
    await expectEveryBatchOnce(t, file, common, acked);
  });
}

test('after a clean restart, reports acknowledged before a SIGKILL are counted too (journal numbers never restart)', async (t) => {
  const file = freshPath();
  const common = 'url:sha256:wb-common';
  const first = await openReputation({ store: 'sqlite', path: file, writeBehind: true });
  for (let n = 1; n <= 5; n++) {
    const { batchId, records } = writeBehindBatch(common, n, FRESH);
    await first.engine.ingest(batchId, { id: 'sensor-1', weight: 1 }, records, WRITE_BEHIND_NOW);
  }
  await first.close(); // flushed: rows carry the numbers of journal rows that are gone now
  const acked = await ingestUntilKilled(file, common, { killAfter: 3 }, 6);
  await expectEveryBatchOnce(t, file, common, acked);
});

/**
 * Reopens the store (recovery) and checks that batches 1..committed are each counted exactly
 * once and no later one at all, where `committed` is what the item shared by all batches says.
 */
async function expectEveryBatchOnce(t: ExecutionContext, file: string, common: string, acked: number): Promise<void> {
  const opened = await openReputation({ store: 'sqlite', path: file, writeBehind: true });
  try {
    const [shared] = await opened.engine.lookup([common], WRITE_BEHIND_NOW);
    // Every batch counts the shared item once, so its count says how many batches committed:
    // at least every acknowledged one (more when the kill landed after later commits). Were
    // anything counted twice, the batches that count claims would not all be there, once.
    const committed = shared!.counters.seen;
    t.true(Number.isInteger(committed) && committed >= acked, `shared item seen ${committed} times, ${acked} acks`);
    for (let n = 1; n <= committed + 1; n++) {
      const items = Array.from({ length: FRESH }, (_, i) => freshItem(n, i));
      const seen = (await opened.engine.lookup(items, WRITE_BEHIND_NOW)).map((r) => r.counters.seen);
      const expected = n <= committed ? 1 : 0;
      const wrong = seen.filter((s) => s !== expected).length;
      t.is(wrong, 0, `batch ${n}: ${wrong} of ${FRESH} items not seen exactly ${expected} time(s)`);
    }
    // The resent batch of the last commit is a duplicate, as the sensor's retry would be.
    const resent = writeBehindBatch(common, committed, FRESH);
    t.deepEqual(await opened.engine.ingest(resent.batchId, { id: 'sensor-1', weight: 1 }, resent.records, WRITE_BEHIND_NOW), { accepted: 0, duplicate: true });
  } finally {
    await opened.close();
  }
  const raw = new Database(file, { readonly: true });
  try {
    t.is((raw.prepare('SELECT count(*) AS n FROM journal').get() as { n: number }).n, 0, 'a closed store leaves no journal behind');
  } finally {
    raw.close();
  }
}

test('a second write-behind engine on the same file is refused, naming the file, and opens once the first has closed', async (t) => {
  const file = freshPath();
  const first = await openReputation({ store: 'sqlite', path: file, writeBehind: true });
  const refused = await t.throwsAsync(openReputation({ store: 'sqlite', path: file, writeBehind: true }));
  t.is((refused as { code?: string }).code, 'STORE_LOCKED');
  t.true(refused!.message.includes(file) && refused!.message.includes('another nimbus reputation'), refused!.message);
  await first.close();
  const second = await openReputation({ store: 'sqlite', path: file, writeBehind: true });
  await second.close();
  t.pass();
});

test('reported rows reach the file within the flush interval, while the engine keeps running', async (t) => {
  const file = freshPath();
  const writer = await openReputation({ store: 'sqlite', path: file, writeBehind: true });
  try {
    const item = 'url:sha256:wb-flushed';
    await writer.engine.feedback({ id: 'reporter-1', weight: 1 }, 'spam', [item], WRITE_BEHIND_NOW);
    // A direct-mode engine reads the file only, so it sees the row once it has been written.
    const reader = await openReputation({ store: 'sqlite', path: file, backgroundCheckpoints: false });
    try {
      let spam = 0;
      const written = async () => (spam = (await reader.engine.lookup([item], WRITE_BEHIND_NOW))[0]!.counters.spam) === 1;
      // On timeout the assertion below names the count the file held.
      await waitFor('the row in the file', written, FLUSH_AFTER_MS + 5000).catch(() => undefined);
      t.is(spam, 1);
    } finally {
      await reader.close();
    }
  } finally {
    await writer.close();
  }
});
