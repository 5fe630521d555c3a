/**
 * Child process for the crash test: opens the statistics of NIMBUS_DATA_DIR with the process
 * environment, records STATS_RECORDS new records (printing `recorded N` as each is durable),
 * then waits until the outbox is empty, prints `drained` and exits. The test kills it with
 * SIGKILL somewhere in between.
 */
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/log.js';
import { openStatistics } from '../../src/stats/index.js';
import { sampleInput } from './stats-records.js';
import { waitFor } from './wait.js';

const config = loadConfig(process.env);
const stats = openStatistics(config, createLogger('silent'), { backoffBaseMs: 20, backoffMaxMs: 200, idleMs: 50 });
const count = Number(process.env.STATS_RECORDS ?? 0);
const from = Number(process.env.STATS_FROM ?? 0);
for (let i = from; i < from + count; i++) {
  await stats.record(sampleInput(i));
  process.stdout.write(`recorded ${i - from + 1}\n`);
}
await waitFor('an empty outbox', () => stats.summary().backlog === 0, 600_000);
await stats.close();
process.stdout.write('drained\n');
