/**
 * `nimbus setup [--env-path PATH] [--yes] [--FLAG VALUE…]`: asks on a terminal what an install
 * needs (how Nimbus is plugged in, relay domains, addresses, participation, public DNS lists,
 * spam action and scores), writes the env file with a comment per variable, and prints the next
 * steps. Every question has a flag; `--yes` takes the defaults (the file's current values, or
 * the way's) for those not given, so an unattended install asks nothing (src/setup/).
 *
 * Exit codes: 0 written; 64 usage (an unknown flag, a bad value, a missing answer without a
 * terminal); 78 the answers together do not load (nothing is written); 130 abandoned (Ctrl-C).
 */
import { loadSettings, type Env } from '../config/index.js';
import { Answers } from '../setup/answers.js';
import { DEFAULT_ENV_FILE, nimbusGroupId, readCurrent, renderEnvFile, writeEnvFile } from '../setup/env-file.js';
import { nextSteps } from '../setup/next-steps.js';
import { askSetup, QUESTION_FLAGS, SetupUsageError } from '../setup/questions.js';
import { openTerminal, SetupAbandoned, type Terminal } from '../setup/terminal.js';

const EXIT_USAGE = 64;
const EXIT_ABANDONED = 130;

const USAGE = `usage: nimbus setup [--env-path PATH] [--yes] [${QUESTION_FLAGS.map((flag) => `${flag} VALUE`).join('] [')}]

Asks on a terminal, with the file's current values as defaults (Enter keeps one, - empties it);
a flag answers its question instead. --yes takes the defaults for every question not given by a
flag. Writes ${DEFAULT_ENV_FILE} unless --env-path names another file.
`;

interface Options {
  readonly envFile: string;
  readonly yes: boolean;
  readonly given: ReadonlyMap<string, string>;
}

/**
 * `--flag value` or `--flag=value`; anything else is a usage error naming it. The file is
 * `--env-path`, not `--env-file`: Node 20 takes `--env-file` for itself even after the script
 * name, and exits when the file does not exist yet.
 */
function parseArgs(args: readonly string[]): Options {
  const given = new Map<string, string>();
  let envFile: string | null = null;
  let yes = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--yes' || arg === '-y') {
      yes = true;
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    if (flag !== '--env-path' && !QUESTION_FLAGS.includes(flag)) throw new SetupUsageError(`unknown option ${JSON.stringify(arg)}`);
    const value = eq > 0 && arg.startsWith('--') ? arg.slice(eq + 1) : args[++i];
    if (value === undefined) throw new SetupUsageError(`${flag} needs a value`);
    if (given.has(flag) || (flag === '--env-path' && envFile !== null)) throw new SetupUsageError(`${flag} given twice`);
    if (flag === '--env-path') envFile = value;
    else given.set(flag, value);
  }
  // The file a process started with NIMBUS_ENV_FILE reads, else the one the units read.
  return { envFile: envFile ?? (process.env.NIMBUS_ENV_FILE || DEFAULT_ENV_FILE), yes, given };
}

export async function run(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  let options: Options;
  try {
    options = parseArgs(args);
  } catch (error) {
    if (!(error instanceof SetupUsageError)) throw error;
    process.stderr.write(`nimbus setup: ${error.message}\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  const current = readCurrent(options.envFile);
  const terminal: Terminal | null = process.stdin.isTTY && !options.yes ? openTerminal(process.stdin, process.stdout) : null;
  try {
    if (terminal) terminal.say(`Nimbus setup: writes ${options.envFile}. The values in [brackets] are the defaults: Enter keeps one, - empties it.`);
    const plan = await askSetup(new Answers(options.given, terminal, options.yes), current);
    const answered = new Set(plan.answers.map((answer) => answer.name));
    const kept = Object.fromEntries(Object.entries(current.values).filter(([name]) => !answered.has(name)));
    // The file must start a gateway: the loader's own checks, on exactly what will be written.
    const env: Env = { ...kept, ...Object.fromEntries(plan.answers.map((answer) => [answer.name, answer.value])) };
    loadSettings(env);
    const gid = process.getuid?.() === 0 ? nimbusGroupId() : null;
    const text = renderEnvFile({ path: options.envFile, way: plan.way, answers: plan.answers, kept, now: new Date() });
    const mode = await writeEnvFile(options.envFile, text, gid);
    process.stdout.write(`${terminal ? '\n' : ''}${nextSteps(plan, { path: options.envFile, mode, group: gid === null ? null : 'nimbus' })}`);
    return 0;
  } catch (error) {
    if (error instanceof SetupUsageError) {
      process.stderr.write(`nimbus setup: ${error.message}\n`);
      return EXIT_USAGE;
    }
    if (error instanceof SetupAbandoned) {
      process.stderr.write(`\nnimbus setup: ${error.message}\n`);
      return EXIT_ABANDONED;
    }
    throw error;
  } finally {
    terminal?.close();
  }
}
