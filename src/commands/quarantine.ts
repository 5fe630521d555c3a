/**
 * `nimbus quarantine list [--json] | show [--raw] ID | release ID… | delete ID…`: the local
 * quarantine under NIMBUS_DATA_DIR/quarantine (src/quarantine/). `release` relays to
 * NIMBUS_NEXT_HOP (or into the Maildir when it is empty) with the original envelope.
 *
 * Exit codes: 0 all done; 1 an id unknown, or a release/delete failed (the others are still
 * done, each reported on its own line); 64 usage (nothing is done when any id is malformed).
 */
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { loadConfig } from '../config/index.js';
import { deliverReleased } from '../gateway/release.js';
import { Quarantine, QuarantineError, checkQuarantineId, quarantineDir, type QuarantineMeta } from '../quarantine/store.js';

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 64;

const USAGE = `usage: nimbus quarantine list [--json]
       nimbus quarantine show [--raw] ID
       nimbus quarantine release ID…
       nimbus quarantine delete ID…
`;

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const flags = rest.filter((arg) => arg.startsWith('--'));
  const ids = rest.filter((arg) => !arg.startsWith('--'));
  const allowed: Record<string, readonly string[]> = { list: ['--json'], show: ['--raw'], release: [], delete: [] };
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
      return each(ids, async (id) => {
        const result = await quarantine.release(id, (entry) => deliverReleased(entry, config));
        process.stdout.write(`released ${id}: ${result.reply.code} ${result.reply.text} (to ${result.to})\n`);
      });
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

/** Runs `work` for every id, reporting each failure and going on with the others. */
async function each(ids: readonly string[], work: (id: string) => Promise<void>): Promise<number> {
  let code = EXIT_OK;
  for (const id of ids) {
    try {
      await work(id);
    } catch (error) {
      if (!(error instanceof QuarantineError)) throw error;
      process.stderr.write(`nimbus quarantine: ${id}: ${error.message}\n`);
      code = EXIT_FAILED;
    }
  }
  return code;
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
