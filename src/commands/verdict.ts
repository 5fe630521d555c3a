/**
 * `nimbus verdict show|spam|ham|clear FINGERPRINT [--reason TEXT] [--service] [--json]`: an
 * admin's say on one fingerprint. On the embedded engine (the gateway's own file) by default;
 * with `--service`, at the reputation service (NIMBUS_REPUTATION_URL, with an admin key in
 * NIMBUS_REPUTATION_KEY): PUT/DELETE /v1/verdicts and GET /v1/fingerprints. `spam` and `ham`
 * set an override that beats every counter, `clear` removes it; every change is kept in the
 * fingerprint's audit trail. `show` says why the fingerprint has its verdict.
 *
 * Exit status: 0 done; 1 nothing known of the fingerprint (`show`) or no override to clear
 * (`clear`), or the service refused; 64 usage.
 */
import { loadConfig } from '../config/index.js';
import { parseFingerprint } from '../fingerprint/types.js';
import { createReputationClient, type ServiceExplanation } from '../reputation/client.js';
import type { FingerprintExplanation, OverrideVerdict } from '../reputation/engine-types.js';
import { COMMAND_SERVICE_TIMEOUT_MS, openLocalReputation } from '../scan/runtime.js';

export const EXIT_USAGE = 64;
export const EXIT_NOTHING = 1;

const USAGE = 'usage: nimbus verdict show|spam|ham|clear FINGERPRINT [--reason TEXT] [--service] [--json]\n';
const ACTIONS = ['show', 'spam', 'ham', 'clear'] as const;
type Action = (typeof ACTIONS)[number];

/** Where the verdict is read and set: the embedded engine or the service, behind one shape. */
interface VerdictTarget {
  readonly name: string;
  explain(item: string): Promise<Explained | null>;
  set(item: string, verdict: OverrideVerdict, reason: string | undefined): Promise<void>;
  clear(item: string, reason: string | undefined): Promise<boolean>;
  close(): Promise<void>;
}

type Explained = FingerprintExplanation | Omit<ServiceExplanation, 'item'>;

interface Parsed {
  readonly action: Action;
  readonly item: string;
  readonly reason: string | undefined;
  readonly service: boolean;
  readonly json: boolean;
}

function parse(args: readonly string[]): Parsed | string {
  const rest = [...args];
  let reason: string | undefined;
  const at = rest.indexOf('--reason');
  if (at >= 0) {
    reason = rest[at + 1];
    if (reason === undefined) return '--reason needs a text';
    rest.splice(at, 2);
  }
  const service = rest.includes('--service');
  const json = rest.includes('--json');
  const unknown = rest.find((a) => a.startsWith('--') && a !== '--service' && a !== '--json');
  if (unknown) return `unknown option ${unknown}`;
  const [action, item, extra] = rest.filter((a) => !a.startsWith('--'));
  if (!(ACTIONS as readonly string[]).includes(action ?? '')) return `say one of ${ACTIONS.join(', ')}`;
  if (item === undefined || extra !== undefined) return 'name exactly one fingerprint (kind:algorithm:value, as nimbus check --json prints it)';
  if (parseFingerprint(item) === null) return `${JSON.stringify(item)} is not a fingerprint (kind:algorithm:value, as nimbus check --json prints it)`;
  return { action: action as Action, item, reason, service, json };
}

async function localTarget(): Promise<VerdictTarget> {
  const opened = await openLocalReputation(loadConfig());
  const by = (reason: string | undefined) => ({ by: 'local', ...(reason === undefined ? {} : { reason }) });
  return {
    name: 'the local engine',
    explain: (item) => opened.engine.explain(item),
    set: (item, verdict, reason) => opened.engine.setVerdict(item, verdict, by(reason)),
    clear: (item, reason) => opened.engine.clearVerdict(item, by(reason)),
    close: () => opened.close(),
  };
}

function serviceTarget(): VerdictTarget | string {
  const config = loadConfig();
  if (config.reputationUrl === null || !config.reputationKey) return '--service needs NIMBUS_REPUTATION_URL and an admin key in NIMBUS_REPUTATION_KEY';
  const client = createReputationClient({ url: config.reputationUrl, key: config.reputationKey, timeoutMs: COMMAND_SERVICE_TIMEOUT_MS });
  return {
    name: 'the reputation service',
    explain: (item) => client.explain(item),
    set: (item, verdict, reason) => client.setVerdict(item, { verdict, ...(reason === undefined ? {} : { reason }) }),
    clear: (item) => client.clearVerdict(item),
    close: async () => client.close(),
  };
}

const round = (x: number): string => String(Math.round(x * 1000) / 1000);

export function formatExplanation(item: string, found: Explained): string {
  const out = [`${item}: ${found.result.verdict}, score ${round(found.result.score)}, confidence ${round(found.result.confidence)}`];
  if (found.result.match !== null) out.push(`answered by its near neighbour ${found.result.match.item} (similarity ${round(found.result.match.similarity)})`);
  out.push(found.override === null ? 'override: none' : `override: ${found.override.verdict}${found.override.reason ? ` (${found.override.reason})` : ''}`);
  out.push(`reporters: ${found.reporterCount}`);
  for (const r of found.reporters) {
    const role = 'role' in r && r.role ? ` (${r.role})` : '';
    out.push(`  ${r.id}${role}: spam ${round(r.spam)}, ham ${round(r.ham)}, weak ${round(r.weak)}, sensor ${round(r.sensor)}, last ${r.lastReport}`);
  }
  for (const a of found.audit) out.push(`audit: ${a.at} ${a.by}: ${a.before ?? 'none'} -> ${a.after ?? 'none'}${a.reason ? ` (${a.reason})` : ''}`);
  return `${out.join('\n')}\n`;
}

export async function run(args: string[]): Promise<number> {
  const parsed = parse(args);
  if (typeof parsed === 'string') {
    process.stderr.write(`nimbus verdict: ${parsed}\n${USAGE}`);
    return EXIT_USAGE;
  }
  const target = parsed.service ? serviceTarget() : await localTarget();
  if (typeof target === 'string') {
    process.stderr.write(`nimbus verdict: ${target}\n`);
    return EXIT_USAGE;
  }
  const { action, item, reason } = parsed;
  try {
    if (action === 'show') {
      const found = await target.explain(item);
      if (found === null) {
        process.stderr.write(`nimbus verdict: ${target.name} knows nothing of ${item} (never seen, reported or overridden, or expired)\n`);
        return EXIT_NOTHING;
      }
      process.stdout.write(parsed.json ? `${JSON.stringify({ item, ...found })}\n` : formatExplanation(item, found));
      return 0;
    }
    if (action === 'clear') {
      const removed = await target.clear(item, reason);
      process.stdout.write(removed ? `${item}: override removed at ${target.name}\n` : `${item}: ${target.name} had no override to remove\n`);
      return removed ? 0 : EXIT_NOTHING;
    }
    await target.set(item, action, reason);
    process.stdout.write(`${item}: ${action} at ${target.name} (an override that beats every counter; nimbus verdict clear removes it)\n`);
    return 0;
  } finally {
    await target.close();
  }
}
