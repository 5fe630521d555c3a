/**
 * Child process for the write-behind crash test: opens the SQLite store at WB_PATH as the
 * service does (write-behind) and ingests batches one after another, each with one item every
 * batch shares (WB_COMMON) and WB_FRESH items of its own; prints `acked N` once batch N's ingest
 * has resolved (batches numbered from WB_FIRST, default 1). With WB_CRASH_AT_SLICE=k it kills itself with SIGKILL right after the k-th flush
 * slice has committed (rows on disk, their journal rows not yet dropped); otherwise the test
 * kills it.
 */
import { SqliteStore } from '../../src/reputation/stores/sqlite.js';
import { WRITE_BEHIND_NOW, writeBehindBatch } from './write-behind.js';

const crashAt = Number(process.env.WB_CRASH_AT_SLICE ?? 0);
let slices = 0;
const store = new SqliteStore(process.env.WB_PATH!, {
  writeBehind: true,
  writeBehindHooks: {
    sliceWritten: () => {
      if (++slices === crashAt) process.kill(process.pid, 'SIGKILL');
    },
  },
});
const fresh = Number(process.env.WB_FRESH);
for (let n = Number(process.env.WB_FIRST ?? 1); ; n++) {
  const { batchId, records } = writeBehindBatch(process.env.WB_COMMON!, n, fresh);
  await store.ingest(batchId, { id: 'sensor-1', weight: 1 }, records, WRITE_BEHIND_NOW);
  process.stdout.write(`acked ${n}\n`);
}
