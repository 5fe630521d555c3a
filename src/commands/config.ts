import { loadConfig, printableConfig } from '../config/index.js';

export async function run(_args: string[]): Promise<number> {
  const config = loadConfig();
  process.stdout.write(`${JSON.stringify(printableConfig(config), null, 2)}\n`);
  return 0;
}
