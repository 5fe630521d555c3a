/** `nimbus reputation`: the reputation service (src/reputation/service/process.ts runs it as a process). */
import { loadConfig } from '../config/index.js';
import { serveReputation } from '../reputation/service/process.js';

export async function run(_args: string[]): Promise<number> {
  return serveReputation(loadConfig());
}
