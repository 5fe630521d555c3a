/**
 * `nimbus config [--json | --markdown]`: the effective configuration, secrets masked.
 * Plain: one `NAME=value` per variable in the table's order, as an env file would hold them.
 * `--json`: the parsed `Config` by field name. `--markdown`: docs/admin/configuration.md as the
 * table generates it (no environment needed; `npm run docs:config` writes it).
 */
import { configLines, configurationPage, loadSettings, printableConfig } from '../config/index.js';

const EXIT_USAGE = 64;
const USAGE = 'usage: nimbus config [--json | --markdown]\n';

export async function run(args: string[]): Promise<number> {
  const unknown = args.filter((arg) => arg !== '--json' && arg !== '--markdown');
  if (unknown.length > 0 || args.length > 1) {
    process.stderr.write(`nimbus config: ${unknown.length > 0 ? `unknown option ${JSON.stringify(unknown[0])}` : 'one option at most'}\n${USAGE}`);
    return EXIT_USAGE;
  }
  if (args[0] === '--markdown') {
    process.stdout.write(configurationPage());
    return 0;
  }
  const { config, values } = loadSettings();
  const text = args[0] === '--json' ? JSON.stringify(printableConfig(config), null, 2) : configLines(values).join('\n');
  process.stdout.write(`${text}\n`);
  return 0;
}
