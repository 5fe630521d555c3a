/** The statistics store's tables: each entry moves the file's user_version from its index to index + 1. */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE stats (
     id TEXT PRIMARY KEY, time INTEGER NOT NULL, client_ip TEXT NOT NULL, helo TEXT,
     verdict TEXT NOT NULL, score REAL NOT NULL, action TEXT NOT NULL, size INTEGER NOT NULL,
     next_hop TEXT, fingerprints TEXT NOT NULL);
   CREATE INDEX stats_time ON stats(time);
   CREATE TABLE outbox (
     seq INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, gathered_off INTEGER NOT NULL,
     batch_id TEXT, record TEXT NOT NULL);
   CREATE INDEX outbox_batch ON outbox(batch_id);
   CREATE TABLE batches (id TEXT PRIMARY KEY, created INTEGER NOT NULL, mode TEXT NOT NULL, body TEXT NOT NULL);
   CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
  `ALTER TABLE batches ADD COLUMN owner TEXT;
   ALTER TABLE batches ADD COLUMN claimed INTEGER;
   INSERT OR REPLACE INTO meta (key, value) SELECT 'outboxCount', CAST(count(*) AS TEXT) FROM outbox;`,
  // The last acknowledged batches, bodies as sent, for the console's participation page.
  `CREATE TABLE sent_batches (id TEXT PRIMARY KEY, sent INTEGER NOT NULL, mode TEXT NOT NULL, body TEXT NOT NULL);`,
];
