/**
 * The relay as a process (front-process.ts runs it alone or as one worker of the supervisor).
 */
import type { Config } from '../config/index.js';
import { serveFront, type Front, type Role } from './front-process.js';
import { startGateway } from './server.js';

export type { Role } from './front-process.js';

const RELAY: Front = {
  service: 'gateway',
  stopping: 'finishing messages in flight',
  start: (config, log, runtime) => startGateway(config, log, { scanner: runtime.scanner, observer: runtime.recorder, quarantine: runtime.quarantine }),
};

/** One gateway in this process: alone (NIMBUS_WORKERS=1) or as one worker of the primary. */
export function serveGateway(config: Config, role: Role): Promise<number> {
  return serveFront(RELAY, config, role);
}
