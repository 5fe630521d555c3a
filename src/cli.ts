#!/usr/bin/env node
/**
 * `nimbus COMMAND [ARGS…]`: each command lives in src/commands/<name>.ts and exports
 * `run(args): Promise<number>` (the exit code). Commands are loaded lazily so that a quick
 * `nimbus statement` does not pay for sharp or the SMTP stack.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from './config/index.js';
import { NimbusError } from './errors.js';
import { maskCredentials } from './redact.js';

/** Exit code for a bad configuration (sysexits EX_CONFIG), so systemd logs show it as such. */
export const EXIT_CONFIG = 78;
export const EXIT_USAGE = 64;
export const EXIT_FAILURE = 1;

interface CommandModule {
  run(args: string[]): Promise<number>;
}

const COMMANDS: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
  gateway: { summary: 'run the SMTP relay', load: () => import('./commands/gateway.js') },
  milter: { summary: 'run the scan as a Postfix/Sendmail mail filter (milter protocol 6)', load: () => import('./commands/milter.js') },
  console: { summary: 'run the web console; console passwd USER sets a login', load: () => import('./commands/console.js') },
  reputation: { summary: 'run the reputation service (HTTP API)', load: () => import('./commands/reputation.js') },
  check: { summary: 'fingerprints, lookups and verdict of messages: check [--json] [FILE.eml…]', load: () => import('./commands/check.js') },
  report: { summary: 'feedback: report --spam|--ham|--forget FILE.eml…', load: () => import('./commands/report.js') },
  learn: { summary: 'teach the local engine existing mail: learn --spam|--ham PATH… (messages, mboxes, Maildirs, trees)', load: () => import('./commands/learn.js') },
  verdict: { summary: 'an admin override: verdict show|spam|ham|clear FINGERPRINT [--reason TEXT] [--service]', load: () => import('./commands/verdict.js') },
  stats: { summary: 'local statistics, backlog and participation state: stats [--json]', load: () => import('./commands/stats.js') },
  statement: { summary: 'exactly what each participation mode sends', load: () => import('./commands/statement.js') },
  keys: { summary: 'keys add --role sensor|reporter|admin | keys list | keys revoke ID', load: () => import('./commands/keys.js') },
  quarantine: { summary: 'quarantine list|show|release|delete', load: () => import('./commands/quarantine.js') },
  config: { summary: 'the effective configuration, NAME=value, secrets masked: config [--json | --markdown]', load: () => import('./commands/config.js') },
  setup: { summary: 'asks what an install needs and writes the env file: setup [--env-path PATH] [--yes] [--FLAG VALUE…]', load: () => import('./commands/setup.js') },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(([name, { summary }]) => `  ${name.padEnd(width)}  ${summary}`);
  return `usage: nimbus COMMAND [ARGS…]\n       nimbus --version\n\ncommands:\n${lines.join('\n')}\n`;
}

/**
 * The version in package.json, which sits one level above this file both in the source tree
 * (src/cli.ts) and in an installed package (dist/cli.js): what `npm pack` named the package.
 */
function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? EXIT_USAGE : 0;
  }
  if (name === '--version') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`nimbus: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return EXIT_USAGE;
  }
  try {
    const module = await command.load();
    return await module.run(args);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`nimbus ${name}: ${error.message}\n`);
      return EXIT_CONFIG;
    }
    // Our own errors say what is wrong and what to do (a store already written by another
    // service, Redis unreachable…): the message and code, not a stack trace.
    if (error instanceof NimbusError) {
      process.stderr.write(`nimbus ${name}: ${maskCredentials(error.message)} (${error.code})\n`);
      return EXIT_FAILURE;
    }
    throw error;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`nimbus: ${maskCredentials(error instanceof Error ? (error.stack ?? error.message) : String(error))}\n`);
    process.exitCode = 1;
  },
);
