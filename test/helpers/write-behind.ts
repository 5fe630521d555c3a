/** Batches shared by the write-behind crash test and its child process. */
import type { ReportRecord } from '../../src/reputation/api.js';

/** The clock both use, fixed so that counters do not decay between ingest and recovery. */
export const WRITE_BEHIND_NOW = Date.parse('2026-11-01T00:00:00Z');

export const freshItem = (n: number, i: number) => `url:sha256:wb-${n}-${i}`;

/** Batch n: `common` and `fresh` items of its own, in records of 4 fingerprints. */
export function writeBehindBatch(common: string, n: number, fresh: number): { batchId: string; records: ReportRecord[] } {
  const time = new Date(WRITE_BEHIND_NOW).toISOString();
  const records: ReportRecord[] = [{ id: `r${n}-common`, time, fingerprints: [common], verdict: 'unknown', score: 0, action: 'deliver' }];
  for (let i = 0; i < fresh; i += 4) {
    const fingerprints = [];
    for (let j = i; j < Math.min(fresh, i + 4); j++) fingerprints.push(freshItem(n, j));
    records.push({ id: `r${n}-${i}`, time, fingerprints, verdict: 'unknown', score: 0, action: 'deliver' });
  }
  return { batchId: `wb-batch-${n}`, records };
}
