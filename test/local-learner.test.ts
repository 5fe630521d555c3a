import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createLogger } from '../src/log.js';
import { openReputation } from '../src/reputation/open.js';
import { LocalLearner } from '../src/scan/local-learner.js';

test("the embedded engine learns the gateway's own traffic without keeping a batch mark per flush", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nimbus-learner-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'local-reputation.sqlite');
  const opened = await openReputation({ store: 'sqlite', path, backgroundCheckpoints: false });
  const learner = new LocalLearner(opened.engine, createLogger('silent'));
  const item = 'ip:sha256:' + 'ab'.repeat(32);
  for (let i = 0; i < 5; i++) {
    learner.learn({ id: `m${i}`, time: new Date().toISOString(), fingerprints: [item], verdict: 'unknown', score: 0, action: 'deliver' });
    await learner.drain();
  }
  t.is((await opened.engine.lookup([item]))[0]!.counters.seen, 5, 'every message seen once');
  await opened.close();
  const db = new Database(path, { readonly: true });
  t.teardown(() => db.close());
  t.is((db.prepare('SELECT count(*) AS n FROM batch').get() as { n: number }).n, 0, 'no idempotency marks: nothing resends these records');
});
