/**
 * The milter as a process, run exactly as the relay is (src/gateway/front-process.ts): alone or
 * as one worker of the supervisor; SIGTERM answers every message in progress before exiting.
 */
import type { Config } from '../config/index.js';
import { serveFront, type Front, type Role } from '../gateway/front-process.js';
import { startMilter } from './server.js';

const MILTER: Front = {
  service: 'milter',
  stopping: 'answering messages in progress',
  // Only a process alone owns a unix socket: a worker's primary holds it (server.ts).
  start: (config, log, runtime, role) => startMilter(config, log, { scanner: runtime.scanner, observer: runtime.recorder, quarantine: runtime.quarantine, metrics: runtime.metrics }, { ownsSocket: role === 'single' }),
};

export function serveMilter(config: Config, role: Role): Promise<number> {
  return serveFront(MILTER, config, role);
}
