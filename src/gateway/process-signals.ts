/** What the gateway's supervisor and its workers share: the ready message, and how a reload failure is told. */
import { ConfigError } from '../config/index.js';

/** Worker → primary: the SMTP listener is up and the signal handlers are in place. */
export const READY_MESSAGE = 'nimbus:gateway-ready';

/** The problems of a refused configuration edit, for the `reload_failed` log line. */
export function reloadProblems(error: unknown): readonly string[] {
  return error instanceof ConfigError ? error.problems : [String(error)];
}
