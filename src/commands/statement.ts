/**
 * `nimbus statement [--json]`: exactly what each participation mode sends (from src/stats/wire.ts),
 * and what each configured public DNS list is told (NIMBUS_DNS_LISTS, read on its own: the
 * statement is read before NIMBUS_ACCEPT_STATEMENT is set, when the whole configuration may not
 * load yet).
 */
import { effectiveEnv, PARTICIPATION_MODES, VARIABLES, type DnsListEntry } from '../config/index.js';
import { LIST_KIND_TELLS } from '../dns/lists.js';
import { SAMPLE_RULES } from '../stats/samples.js';
import { exampleRecord, statementText } from '../stats/statement.js';
import { NEVER_SENT, STATEMENT } from '../stats/wire.js';

/** The configured lists; an unreadable setting is said on stderr, and the statement still printed. */
function configuredLists(): readonly DnsListEntry[] {
  let raw: string | undefined;
  try {
    raw = effectiveEnv().NIMBUS_DNS_LISTS;
  } catch (error) {
    process.stderr.write(`nimbus statement: ${error instanceof Error ? error.message : String(error)}\n`);
    raw = process.env.NIMBUS_DNS_LISTS;
  }
  const parsed = VARIABLES.NIMBUS_DNS_LISTS.parser.parse(raw ?? '');
  if (parsed.ok) return parsed.value;
  process.stderr.write(`nimbus statement: NIMBUS_DNS_LISTS is not valid, so no list is shown:\n  ${parsed.complaints.join('\n  ')}\n`);
  return [];
}

export async function run(args: string[]): Promise<number> {
  const lists = configuredLists();
  if (args.includes('--json')) {
    const modes = Object.fromEntries(PARTICIPATION_MODES.map((mode) => [mode, { sends: STATEMENT[mode], example: exampleRecord(mode), samples: mode === 'extended' ? SAMPLE_RULES : [] }]));
    const dnsLists = lists.map((list) => ({ name: list.name, zone: list.zone, kind: list.kind, tells: LIST_KIND_TELLS[list.kind] }));
    process.stdout.write(`${JSON.stringify({ neverSent: NEVER_SENT, modes, dnsLists }, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(statementText(lists));
  return 0;
}
