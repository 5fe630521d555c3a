/**
 * `nimbus console`: the web console (src/console/). `nimbus console passwd USER`: sets USER's
 * password, typed twice on a terminal without echo, or given twice (two lines) on standard
 * input when it is not a terminal; only a scrypt hash is stored.
 */
import { loadConfig } from '../config/index.js';
import { serveConsole } from '../console/process.js';
import { ConsoleUsers, USER_NAME } from '../console/users.js';
import { NimbusError } from '../errors.js';
import { openTerminal, SetupAbandoned } from '../setup/terminal.js';

const EXIT_USAGE = 64;
const USAGE = 'usage: nimbus console | nimbus console passwd USER\n';

export async function run(args: string[]): Promise<number> {
  if (args.length === 0) return serveConsole(loadConfig());
  const [sub, user, ...rest] = args;
  if (sub !== 'passwd' || user === undefined || rest.length > 0) {
    process.stderr.write(`nimbus console: ${sub === 'passwd' ? 'passwd takes exactly one USER' : `unknown argument ${JSON.stringify(sub)}`}\n${USAGE}`);
    return EXIT_USAGE;
  }
  if (!USER_NAME.test(user)) {
    process.stderr.write(`nimbus console passwd: user name ${JSON.stringify(user)}: expected 1 to 64 letters, digits, dots, dashes or underscores\n`);
    return EXIT_USAGE;
  }
  const config = loadConfig();
  const entries = process.stdin.isTTY ? await fromTerminal(user) : await fromStdin();
  if (entries === null) return 130;
  const [first, second] = entries;
  if (first !== second) throw new NimbusError('CONSOLE_WEAK_PASSWORD', 'the two passwords differ; nothing was written');
  await new ConsoleUsers(config.dataDir).setPassword(user, first);
  process.stdout.write(`password of ${user} set (scrypt hash in ${config.dataDir}/console-users.json)\n`);
  return 0;
}

async function fromTerminal(user: string): Promise<[string, string] | null> {
  const terminal = openTerminal(process.stdin, process.stdout);
  try {
    return [await terminal.ask(`New password for ${user}: `, { secret: true }), await terminal.ask('Again: ', { secret: true })];
  } catch (error) {
    if (error instanceof SetupAbandoned) return null;
    throw error;
  } finally {
    terminal.close();
  }
}

async function fromStdin(): Promise<[string, string]> {
  let text = '';
  for await (const chunk of process.stdin) text += String(chunk);
  const lines = text.split(/\r?\n/);
  return [lines[0] ?? '', lines[1] ?? ''];
}
