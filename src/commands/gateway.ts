/**
 * `nimbus gateway`: the SMTP relay (src/gateway/). With NIMBUS_WORKERS > 1 this process is the
 * supervisor (gateway/supervisor.ts) and its forked workers run the gateway (gateway/process.ts).
 */
import cluster from 'node:cluster';
import { loadConfig } from '../config/index.js';
import { superviseGateway } from '../gateway/supervisor.js';

export async function run(_args: string[]): Promise<number> {
  // Loaded only where a gateway runs: the supervisor must not carry the SMTP stack, sharp or SQLite.
  if (cluster.isWorker) {
    const { serveGateway } = await import('../gateway/process.js');
    try {
      return await serveGateway(loadConfig(), 'worker');
    } finally {
      // The IPC channel to the primary would keep a finished (or failed) worker alive.
      if (process.connected) process.disconnect();
    }
  }
  const config = loadConfig();
  if (config.workers > 1) return superviseGateway(config);
  const { serveGateway } = await import('../gateway/process.js');
  return serveGateway(config, 'single');
}
