/**
 * A reputation file written by Nimbus before f84162b (every reporter's evidence in `pair`,
 * user_version 1) opened by today's SQLite store, which keeps a fingerprint's first reporters
 * inline in its `fp` row and migrates old files by adding two columns. The old file is built here
 * from the old CREATE statements and the rows the old code wrote, so the test needs no git
 * history; a fresh store fed the same history is the control every lookup is compared with.
 */
import test from 'ava';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { LookupResult, ReportRecord } from '../src/reputation/api.js';
import type { ReputationEngine } from '../src/reputation/engine-types.js';
import { openReputation } from '../src/reputation/open.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'nimbus-sqlite-migration-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));
let counter = 0;

const T0 = Date.parse('2026-11-01T00:00:00Z');
const THREE = 'url:sha256:migration-three-reporters';
const ADMIN = 'url:sha256:migration-admin-verdict';
const MANY = 'url:sha256:migration-many-reporters';
const ITEMS = [THREE, ADMIN, MANY];
const OLD_SENSORS = Array.from({ length: 12 }, (_, i) => `s${String(i).padStart(2, '0')}`);

/**
 * Schema as written by Nimbus before f84162b (src/reputation/stores/sqlite.ts at f84162b^:
 * SCHEMA verbatim, then user_version 1 from its one migration).
 */
const OLD_SCHEMA = `
CREATE TABLE IF NOT EXISTS fp (
  item TEXT PRIMARY KEY, seen REAL NOT NULL, spam_reports REAL NOT NULL, ham_reports REAL NOT NULL,
  sensor_ev REAL NOT NULL, spam_ev REAL NOT NULL, weak_ev REAL NOT NULL, ham_ev REAL NOT NULL,
  reporters INTEGER NOT NULL, first_seen REAL, last_seen REAL, ts REAL NOT NULL,
  admin TEXT, admin_reason TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pair (
  item TEXT NOT NULL, reporter TEXT NOT NULL, sensor REAL NOT NULL, spam REAL NOT NULL,
  weak REAL NOT NULL, ham REAL NOT NULL, ts REAL NOT NULL, PRIMARY KEY (item, reporter)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fuzzy (k TEXT NOT NULL, item TEXT NOT NULL, PRIMARY KEY (k, item)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fuzzy_log (seq INTEGER PRIMARY KEY, item TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batch (id TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS batch_at ON batch (at);
CREATE TABLE IF NOT EXISTS api_key (
  id TEXT PRIMARY KEY, role TEXT NOT NULL, label TEXT NOT NULL, secret_hash TEXT NOT NULL,
  created_at TEXT NOT NULL, revoked_at TEXT, rate_limit REAL NOT NULL
);
PRAGMA user_version = 1;
`;

const reporter = (id: string) => ({ id, weight: 1 });
/** A record a sensor delivered: one sighting of the fingerprint, no spam evidence. */
const sighting = (id: string, item: string): ReportRecord => ({ id, time: new Date(T0).toISOString(), fingerprints: [item], verdict: 'unknown', score: 0, action: 'deliver' });
const batchOf = (sensor: string) => `old-batch-${sensor}`;

/**
 * What the old store held after this history, all at T0 (so no decay):
 * - THREE: spam feedback from k1 and k2, a sighting from sensor k3 (2 spam, 3 reporters: unknown);
 * - ADMIN: ham feedback from k1, then an admin verdict of spam;
 * - MANY: a sighting from each of 12 sensors (bulk).
 * The old code wrote one `fp` row per fingerprint (the decayed sums) and one `pair` row per
 * (fingerprint, reporter), and remembered each ingest batch id.
 */
async function oldHistory(engine: ReputationEngine): Promise<void> {
  await engine.feedback(reporter('k1'), 'spam', [THREE], T0);
  await engine.feedback(reporter('k2'), 'spam', [THREE], T0);
  await engine.ingest(batchOf('k3'), reporter('k3'), [sighting('r-k3', THREE)], T0);
  await engine.feedback(reporter('k1'), 'ham', [ADMIN], T0);
  await engine.setVerdict(ADMIN, 'spam', { by: 'admin-key', reason: 'campaign' }, T0);
  for (const s of OLD_SENSORS) await engine.ingest(batchOf(s), reporter(s), [sighting(`r-${s}`, MANY)], T0);
}

/** The same history as rows, as the code before f84162b wrote them. */
function writeOldFile(file: string): void {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec(OLD_SCHEMA);
  const fp = db.prepare(
    `INSERT INTO fp (item, seen, spam_reports, ham_reports, sensor_ev, spam_ev, weak_ev, ham_ev, reporters, first_seen, last_seen, ts, admin, admin_reason)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const pair = db.prepare('INSERT INTO pair (item, reporter, sensor, spam, weak, ham, ts) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const batch = db.prepare('INSERT INTO batch (id, at) VALUES (?, ?)');
  db.transaction(() => {
    // fp: item, seen, spam_reports, ham_reports, sensor_ev, spam_ev, weak_ev, ham_ev, reporters, first_seen, last_seen, ts, admin, admin_reason
    // pair: item, reporter, sensor, spam, weak, ham, ts
    fp.run(THREE, 1, 2, 0, 1, 2, 0, 0, 3, T0, T0, T0, null, null);
    pair.run(THREE, 'k1', 0, 1, 0, 0, T0);
    pair.run(THREE, 'k2', 0, 1, 0, 0, T0);
    pair.run(THREE, 'k3', 1, 0, 0, 0, T0);
    batch.run(batchOf('k3'), T0);
    fp.run(ADMIN, 0, 0, 1, 0, 0, 0, 1, 1, T0, T0, T0, 'spam', 'campaign');
    pair.run(ADMIN, 'k1', 0, 0, 0, 1, T0);
    fp.run(MANY, 12, 0, 0, 12, 0, 0, 0, 12, T0, T0, T0, null, null);
    for (const s of OLD_SENSORS) {
      pair.run(MANY, s, 1, 0, 0, 0, T0);
      batch.run(batchOf(s), T0);
    }
  })();
  db.close();
}

interface Pair {
  /** The store opened on a file written by the old schema. */
  upgraded: ReputationEngine;
  /** A fresh store given the same history through the engine. */
  control: ReputationEngine;
  oldFile: string;
  close(): Promise<void>;
}

const open = async (file: string) => (await openReputation({ store: 'sqlite', path: file, backgroundCheckpoints: false })).engine;

async function openPair(): Promise<Pair> {
  const n = ++counter;
  const oldFile = path.join(tmp, `old-${n}.sqlite`);
  writeOldFile(oldFile);
  const upgraded = await open(oldFile);
  const control = await open(path.join(tmp, `control-${n}.sqlite`));
  await oldHistory(control);
  return { upgraded, control, oldFile, close: async () => void (await Promise.all([upgraded.close(), control.close()])) };
}

/** Runs the same call on both stores. */
async function both(p: Pair, call: (e: ReputationEngine) => Promise<unknown>): Promise<void> {
  await call(p.upgraded);
  await call(p.control);
}

async function lookupBoth(p: Pair, items: readonly string[]): Promise<{ upgraded: LookupResult[]; control: LookupResult[] }> {
  return { upgraded: await p.upgraded.lookup(items, T0), control: await p.control.lookup(items, T0) };
}

const byItem = (results: LookupResult[]) => new Map(results.map((r) => [r.item, r]));
const iso = new Date(T0).toISOString();

test('a file written before inline reporters answers the same verdicts and counters after the upgrade', async (t) => {
  const p = await openPair();
  try {
    const { upgraded, control } = await lookupBoth(p, ITEMS);
    t.deepEqual(upgraded, control);
    const r = byItem(upgraded);
    t.like(r.get(THREE), { verdict: 'unknown', score: 2 / 3, counters: { seen: 1, spam: 2, ham: 0, reporters: 3, firstSeen: iso, lastSeen: iso, adminVerdict: null } });
    t.like(r.get(ADMIN), { verdict: 'spam', score: 1, confidence: 1, counters: { seen: 0, spam: 0, ham: 1, reporters: 1, adminVerdict: 'spam' } });
    t.like(r.get(MANY), { verdict: 'bulk', score: 0, counters: { seen: 12, spam: 0, ham: 0, reporters: 12, adminVerdict: null } });
    // A batch the old store accepted is still known: a sensor resending it is not counted twice.
    const resent = await p.upgraded.ingest(batchOf('k3'), reporter('k3'), [sighting('r-k3', THREE)], T0);
    t.deepEqual(resent, { accepted: 0, duplicate: true });
  } finally {
    await p.close();
  }
});

test('on an upgraded file a reporter stored in the old layout is not counted again, and a new reporter is', async (t) => {
  const p = await openPair();
  try {
    // k1 already gave THREE full spam evidence: counted again, it would make 3 voices and spam.
    await both(p, (e) => e.feedback(reporter('k1'), 'spam', [THREE], T0));
    let { upgraded, control } = await lookupBoth(p, [THREE]);
    t.deepEqual(upgraded, control);
    t.like(upgraded[0], { verdict: 'unknown', counters: { spam: 3, reporters: 3 } });
    // k3 is known too (a sighting): its first spam evidence adds a voice, not a reporter.
    await both(p, (e) => e.feedback(reporter('k3'), 'spam', [THREE], T0));
    ({ upgraded, control } = await lookupBoth(p, [THREE]));
    t.deepEqual(upgraded, control);
    t.like(upgraded[0], { verdict: 'spam', counters: { spam: 4, reporters: 3 } });
    // A new reporter counts, once, however often it reports.
    for (let i = 0; i < 3; i++) await both(p, (e) => e.feedback(reporter('k4'), 'spam', [THREE], T0));
    ({ upgraded, control } = await lookupBoth(p, [THREE]));
    t.deepEqual(upgraded, control);
    t.like(upgraded[0], { verdict: 'spam', counters: { spam: 7, reporters: 4 } });

    // MANY had 12 reporters in `pair`; 5 new sensors fill the inline slots (4) and spill one.
    const fresh = Array.from({ length: 5 }, (_, i) => `n${i}`);
    for (const s of fresh) await both(p, (e) => e.ingest(`new-batch-${s}`, reporter(s), [sighting(`r-${s}`, MANY)], T0));
    ({ upgraded, control } = await lookupBoth(p, [MANY]));
    t.deepEqual(upgraded, control);
    t.like(upgraded[0], { verdict: 'bulk', counters: { seen: 17, reporters: 17 } });
    // Then every one of the 17, old and new, reports it again: still 17 reporters.
    for (const s of [...OLD_SENSORS, ...fresh]) await both(p, (e) => e.ingest(`again-batch-${s}`, reporter(s), [sighting(`r2-${s}`, MANY)], T0));
    ({ upgraded, control } = await lookupBoth(p, [MANY]));
    t.deepEqual(upgraded, control);
    t.like(upgraded[0], { verdict: 'bulk', counters: { seen: 34, reporters: 17 } });
  } finally {
    await p.close();
  }
});

test('an admin verdict from an old file keeps answering over new reports and can be cleared', async (t) => {
  const p = await openPair();
  try {
    await both(p, (e) => e.feedback(reporter('k1'), 'ham', [ADMIN], T0));
    await both(p, (e) => e.feedback(reporter('k2'), 'ham', [ADMIN], T0));
    let { upgraded, control } = await lookupBoth(p, [ADMIN]);
    t.deepEqual(upgraded, control);
    t.like(upgraded[0], { verdict: 'spam', counters: { ham: 3, reporters: 2, adminVerdict: 'spam' } });
    t.true(await p.upgraded.clearVerdict(ADMIN, { by: 'admin-key' }));
    t.true(await p.control.clearVerdict(ADMIN, { by: 'admin-key' }));
    ({ upgraded, control } = await lookupBoth(p, [ADMIN]));
    t.deepEqual(upgraded, control);
    // Two voices of ham (k1 counted once): below the threshold of 3.
    t.like(upgraded[0], { verdict: 'unknown', counters: { ham: 3, reporters: 2, adminVerdict: null } });
  } finally {
    await p.close();
  }
});

/** Everything the store keeps in the file, for comparing two states of it. */
function snapshot(file: string): unknown {
  const db = new Database(file, { readonly: true });
  try {
    return {
      userVersion: db.pragma('user_version', { simple: true }),
      schema: db.prepare('SELECT type, name, sql FROM sqlite_master ORDER BY name').all(),
      fp: db.prepare('SELECT * FROM fp ORDER BY item').all(),
      pair: db.prepare('SELECT * FROM pair ORDER BY item, reporter').all(),
      batch: db.prepare('SELECT * FROM batch ORDER BY id').all(),
    };
  } finally {
    db.close();
  }
}

test('an old file is migrated once: opening it again changes nothing and it keeps working', async (t) => {
  const p = await openPair();
  let upgradedOpen = true;
  try {
    await both(p, (e) => e.feedback(reporter('k5'), 'spam', [THREE], T0));
    await p.upgraded.close();
    upgradedOpen = false;
    const migrated = snapshot(p.oldFile) as { userVersion: number };
    t.is(migrated.userVersion, 3); // every step up to today's schema (the last adds fp.lsn)

    const again = await open(p.oldFile);
    t.deepEqual(await again.lookup(ITEMS, T0), await p.control.lookup(ITEMS, T0));
    await again.close();
    t.deepEqual(snapshot(p.oldFile), migrated);

    // And a third open still takes reports: k1 (old layout) again, k6 new.
    const third = await open(p.oldFile);
    try {
      for (const e of [third, p.control]) {
        await e.feedback(reporter('k1'), 'spam', [THREE], T0);
        await e.feedback(reporter('k6'), 'spam', [THREE], T0);
      }
      const [after] = await third.lookup([THREE], T0);
      t.deepEqual(after, (await p.control.lookup([THREE], T0))[0]);
      t.like(after, { verdict: 'spam', counters: { reporters: 5 } });
    } finally {
      await third.close();
    }
  } finally {
    if (upgradedOpen) await p.upgraded.close();
    await p.control.close();
  }
});
