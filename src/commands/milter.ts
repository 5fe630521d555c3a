/**
 * `nimbus milter`: the scan as a Postfix/Sendmail mail filter (src/milter/). With more than one
 * worker (NIMBUS_WORKERS; its `auto` is half the cores here) this process is the supervisor
 * (gateway/supervisor.ts) and its forked workers run the milter.
 */
import cluster from 'node:cluster';
import { loadConfig } from '../config/index.js';
import { superviseGateway } from '../gateway/supervisor.js';
import { removeStaleSocket } from '../milter/socket-file.js';

export async function run(_args: string[]): Promise<number> {
  if (cluster.isWorker) {
    const { serveMilter } = await import('../milter/process.js');
    try {
      return await serveMilter(loadConfig(), 'worker');
    } finally {
      if (process.connected) process.disconnect();
    }
  }
  const config = loadConfig();
  if (config.milterWorkers > 1) {
    if (config.milterListen.kind === 'unix') removeStaleSocket(config.milterListen.path);
    return superviseGateway(config, 'milter');
  }
  const { serveMilter } = await import('../milter/process.js');
  return serveMilter(config, 'single');
}
