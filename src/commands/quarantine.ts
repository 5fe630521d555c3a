/**
 * `nimbus quarantine list [--json] | show [--raw] ID | release [--as-ham] ID… | delete ID…`: the
 * local quarantine under NIMBUS_DATA_DIR/quarantine (src/quarantine/). `release` relays to
 * NIMBUS_NEXT_HOP (or into the Maildir when it is empty) with the original envelope, without the
 * gateway's verdict fields and subject tag; `--as-ham` then reports the message as ham, as
 * `nimbus report --ham` does (the local engine, and the service when participating).
 *
 * Exit codes: 0 all done; 1 an id unknown, a release/delete failed or the key may not send
 * feedback (the other ids are still done, each reported on its own line); 75 a released message
 * was learnt locally but the service could not be told; 64 usage (nothing is done when any id
 * is malformed).
 */
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { loadConfig, type Config } from '../config/index.js';
import { deliverReleased } from '../gateway/release.js';
import { createLogger } from '../log.js';
import { Quarantine, QuarantineError, checkQuarantineId, quarantineDir, type QuarantineMeta } from '../quarantine/store.js';
import { analyseBytes } from '../scan/analyse.js';
import { openCommandReputation, type CommandReputation } from '../scan/runtime.js';

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 64;
const EXIT_TEMPFAIL = 75;

const USAGE = `usage: nimbus quarantine list [--json]
       nimbus quarantine show [--raw] ID
       nimbus quarantine release [--as-ham] ID…
       nimbus quarantine delete ID…
`;

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const flags = rest.filter((arg) => arg.startsWith('--'));
  const ids = rest.filter((arg) => !arg.startsWith('--'));
  const allowed: Record<string, readonly string[]> = { list: ['--json'], show: ['--raw'], release: ['--as-ham'], delete: [] };
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(USAGE);
    return sub === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const known = allowed[sub];
  if (!known) return usageError(`unknown subcommand ${JSON.stringify(sub)}`);
  const unknownFlag = flags.find((flag) => !known.includes(flag));
  if (unknownFlag) return usageError(`${sub}: unknown option ${unknownFlag}`);
  if (sub === 'list' && ids.length > 0) return usageError('list takes no ids');
  if (sub === 'show' && ids.length !== 1) return usageError('show takes exactly one ID');
  if ((sub === 'release' || sub === 'delete') && ids.length === 0) return usageError(`${sub} needs at least one ID`);
  for (const id of ids) {
    try {
      checkQuarantineId(id);
    } catch (error) {
      return usageError((error as Error).message);
    }
  }

  const config = loadConfig();
  const quarantine = new Quarantine(quarantineDir(config));
  switch (sub) {
    case 'list':
      return list(quarantine, flags.includes('--json'));
    case 'show':
      return show(quarantine, ids[0]!, flags.includes('--raw'));
    case 'release':
      return release(quarantine, ids, config, flags.includes('--as-ham'));
    default:
      return each(ids, async (id) => {
        await quarantine.delete(id);
        process.stdout.write(`deleted ${id}\n`);
      });
  }
}

function usageError(problem: string): number {
  process.stderr.write(`nimbus quarantine: ${problem}\n\n${USAGE}`);
  return EXIT_USAGE;
}

/**
 * Runs `work` for every id, reporting each failure and going on with the others. `work` may
 * resolve with a worse exit code than OK for an id that was done only in part.
 */
async function each(ids: readonly string[], work: (id: string) => Promise<number | void>): Promise<number> {
  let code = EXIT_OK;
  for (const id of ids) {
    try {
      const outcome = (await work(id)) ?? EXIT_OK;
      if (outcome === EXIT_FAILED || code === EXIT_OK) code = outcome;
    } catch (error) {
      if (!(error instanceof QuarantineError)) throw error;
      process.stderr.write(`nimbus quarantine: ${id}: ${error.message}\n`);
      code = EXIT_FAILED;
    }
  }
  return code;
}

/**
 * Releases each id; with `asHam`, each message that went out is then reported as ham with the
 * client address the gateway saw, so the fingerprints the gateway looked up are the ones taught.
 */
async function release(quarantine: Quarantine, ids: readonly string[], config: Config, asHam: boolean): Promise<number> {
  let reputation: CommandReputation | null = null;
  if (asHam) {
    const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, { service: 'quarantine' });
    reputation = await openCommandReputation(config, log);
  }
  try {
    return await each(ids, async (id) => {
      const result = await quarantine.release(id, async (entry) => ({ ...(await deliverReleased(entry, config)), clientIp: entry.meta.clientIp }));
      process.stdout.write(`released ${id}: ${result.reply.code} ${result.reply.text} (to ${result.to})\n`);
      if (reputation === null) return EXIT_OK;
      const found = await analyseBytes(result.message, { clientIp: result.clientIp, keepAttachmentBytes: 0, imageHashes: undefined });
      const learnt = await reputation.feedback.report('ham', found.fingerprints, 'admin');
      process.stdout.write(`${id}: reported as ham: ${learnt.local} fingerprints learnt locally; service: ${learnt.remote}\n`);
      if (learnt.remote === 'forbidden') {
        process.stderr.write('nimbus quarantine: the service refused feedback from NIMBUS_REPUTATION_KEY (403: its role may not report; use a reporter or admin key)\n');
        return EXIT_FAILED;
      }
      return learnt.remote === 'failed' ? EXIT_TEMPFAIL : EXIT_OK;
    });
  } finally {
    await reputation?.close();
  }
}

async function list(quarantine: Quarantine, json: boolean): Promise<number> {
  const metas = await quarantine.list();
  if (json) {
    process.stdout.write(`${JSON.stringify(metas, null, 2)}\n`);
    return EXIT_OK;
  }
  if (metas.length === 0) {
    process.stdout.write(`quarantine is empty (${quarantine.root})\n`);
    return EXIT_OK;
  }
  const rows = [['ID', 'TIME', 'FROM', 'RECIPIENTS', 'SIZE', 'VERDICT'], ...metas.map(row)];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((r) => r[column]!.length)));
  const lines = rows.map((r) => r.map((cell, column) => (column === r.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  '));
  process.stdout.write(`${lines.join('\n')}\n`);
  return EXIT_OK;
}

function row(meta: QuarantineMeta): string[] {
  const recipients = meta.rcptTo.length === 0 ? '-' : meta.rcptTo.length === 1 ? meta.rcptTo[0]! : `${meta.rcptTo[0]} (+${meta.rcptTo.length - 1})`;
  return [meta.id, meta.time.replace(/\.\d{3}Z$/, 'Z'), `<${meta.mailFrom}>`, recipients, String(meta.size), verdictText(meta)];
}

function verdictText(meta: QuarantineMeta): string {
  if (meta.verdict === null) return '-';
  return meta.score === null ? meta.verdict : `${meta.verdict} (${meta.score.toFixed(1)})`;
}

/** Metadata as `Name: value` lines, a blank line, then the stored message byte for byte. */
async function show(quarantine: Quarantine, id: string, raw: boolean): Promise<number> {
  let entry;
  try {
    entry = await quarantine.get(id);
  } catch (error) {
    if (!(error instanceof QuarantineError)) throw error;
    process.stderr.write(`nimbus quarantine: ${error.message}\n`);
    return EXIT_FAILED;
  }
  if (!raw) {
    const m = entry.meta;
    const fields: [string, string][] = [
      ['Id', m.id],
      ['Time', m.time],
      ['Queue-Id', m.queueId],
      ['Client', `${m.helo} [${m.clientIp}]${m.trustedClient ? ' (trusted)' : ''}`],
      ['Mail-From', `<${m.mailFrom}>`],
      ['Rcpt-To', m.rcptTo.map((r) => `<${r}>`).join(', ') || '-'],
      ...(m.spamtrapHits.length > 0 ? [['Spamtrap-Hits', m.spamtrapHits.join(', ')] as [string, string]] : []),
      ['Size', String(m.size)],
      ['Verdict', verdictText(m)],
      ['File', entry.path],
    ];
    process.stdout.write(`${fields.map(([name, value]) => `${name}: ${value}`).join('\n')}\n\n`);
  }
  await pipeline(createReadStream(entry.path), process.stdout, { end: false });
  return EXIT_OK;
}
