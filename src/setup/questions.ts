/**
 * What `nimbus setup` asks, in order, and the rules between the answers. Each question has a
 * flag for unattended installs; each answer for a variable is checked by that variable's own
 * parser in the config table (src/config/table.ts), so setup refuses exactly what the gateway
 * would refuse at start. How a question is answered (flag, default, terminal) is answers.ts's
 * business; this file only decides what to ask and what follows from the answers.
 */
import { statementText } from '../stats/statement.js';
import { WAY_NAMES, WAYS, type Way } from './ways.js';
import type { CurrentFile } from './env-file.js';

export interface Question {
  /** The flag that answers it unattended, e.g. `--relay-domains`. */
  readonly flag: string;
  /** What the terminal asks, in a few words. */
  readonly label: string;
  /** The variable the answer is written to; none for the way Nimbus is plugged in. */
  readonly variable?: string;
  /** The only answers allowed, when there is no variable whose parser says so. */
  readonly choices?: readonly string[];
  /** Typed without echo, shown masked. */
  readonly secret?: boolean;
  /** Said on the terminal before asking (the variable's doc is said too). */
  readonly intro?: string;
}

/** A rule between answers beyond the variable's parser: a complaint, or null when the value is fine. */
export type Check = (value: string) => string | null;

export interface AnswerSource {
  /**
   * The answer to `question`: its flag's value, `fallback` with --yes, or what the admin types;
   * checked, and in the form the env file holds it (`Standard` → `standard`, `25mb` → `25MB`).
   */
  answer(question: Question, fallback: string, check?: Check): Promise<string>;
  /** True when `question` will be asked on the terminal (not answered by a flag or --yes). */
  asks(question: Question): boolean;
  say(text: string): void;
}

export const QUESTIONS = Object.freeze({
  way: {
    flag: '--plug-in',
    label: `How is Nimbus plugged in (${WAY_NAMES.join(', ')})`,
    choices: WAY_NAMES,
    intro: ['Ways to plug Nimbus in (docs/admin/postfix.md):', ...WAY_NAMES.map((name) => `  ${name.padEnd(12)}  ${WAYS[name].summary}`)].join('\n'),
  },
  relayDomains: { flag: '--relay-domains', label: 'Relay domains', variable: 'NIMBUS_RELAY_DOMAINS' },
  listen: { flag: '--listen', label: 'Listen on', variable: 'NIMBUS_LISTEN' },
  nextHop: { flag: '--next-hop', label: 'Next hop (host:port; - for the Maildir)', variable: 'NIMBUS_NEXT_HOP' },
  participation: {
    flag: '--participation',
    label: 'Participation (off, standard, extended)',
    variable: 'NIMBUS_PARTICIPATION',
    intro: 'Participation: with standard or extended, this gateway looks fingerprints up at a reputation service and sends it statistics (`nimbus statement` says exactly what); off keeps everything on this host.',
  },
  acceptStatement: { flag: '--accept-statement', label: 'Do you accept this statement (yes, no)', variable: 'NIMBUS_ACCEPT_STATEMENT' },
  reputationUrl: { flag: '--reputation-url', label: 'Reputation service URL', variable: 'NIMBUS_REPUTATION_URL' },
  reputationKey: { flag: '--reputation-key', label: "This gateway's key at the service", variable: 'NIMBUS_REPUTATION_KEY', secret: true },
  dnsLists: {
    flag: '--dns-lists',
    label: 'Public DNS lists (- for none)',
    variable: 'NIMBUS_DNS_LISTS',
    intro: "Public DNS reputation lists are asked about each client address and link domain, so each query tells the list's operator that address or domain: they are an opt-in of their own. Choose lists, and read their terms, in docs/admin/dns-lists.md.",
  },
  authChecks: {
    flag: '--auth-checks',
    label: 'SPF, DKIM, DMARC and ARC checks (yes, no)',
    variable: 'NIMBUS_AUTH_CHECKS',
    intro: "Authentication checks write Authentication-Results and give each sender domain that proves itself a reputation of its own; they ask the DNS (NIMBUS_DNS_SERVERS, a resolver of your own is best) and are only right where Nimbus sees the real client address, as in every way above: docs/admin/authentication.md.",
  },
  spamAction: { flag: '--spam-action', label: 'Spam action (tag, reject, quarantine, discard)', variable: 'NIMBUS_SPAM_ACTION' },
  tagScore: { flag: '--tag-score', label: 'Tag score', variable: 'NIMBUS_TAG_SCORE' },
  rejectScore: { flag: '--reject-score', label: 'Score for the spam action', variable: 'NIMBUS_REJECT_SCORE' },
  subjectTag: { flag: '--subject-tag', label: 'Subject tag (- for none)', variable: 'NIMBUS_SUBJECT_TAG' },
} satisfies Record<string, Question>);

/** Every flag that answers a question. */
export const QUESTION_FLAGS: readonly string[] = Object.values(QUESTIONS).map((question) => question.flag);

export class SetupUsageError extends Error {}

export interface SetupPlan {
  readonly way: Way;
  /** Variables answered, in the order asked, as they will be written. */
  readonly answers: readonly { readonly name: string; readonly value: string; readonly doc?: string }[];
}

const blank = (value: string): boolean => value.trim() === '';

/** The dialogue: every question in order, each default from the current file where it has one. */
export async function askSetup(source: AnswerSource, current: CurrentFile): Promise<SetupPlan> {
  const answers: { name: string; value: string; doc?: string }[] = [];
  const was = (name: string): string | undefined => current.values[name];
  const record = (question: Question, value: string): string => {
    const entry = { name: question.variable!, value };
    // An answer taken back (participation after the statement was declined) replaces the first.
    const index = answers.findIndex((answer) => answer.name === entry.name);
    if (index < 0) answers.push(entry);
    else answers[index] = entry;
    return value;
  };
  const ask = async (question: Question, fallback: string, check?: Check): Promise<string> => record(question, await source.answer(question, fallback, check));

  const way = (await source.answer(QUESTIONS.way, current.way ?? 'front-mx')) as Way;
  const spec = WAYS[way];
  // Addresses chosen for another way of plugging in are not this way's defaults.
  const sameWay = current.way === way;
  await ask(QUESTIONS.relayDomains, was('NIMBUS_RELAY_DOMAINS') ?? '', (value) =>
    way !== 'after-queue' && blank(value) ? `${way}: mail from outside is refused for every domain not listed: name your domains` : null);
  await ask(QUESTIONS.listen, (sameWay ? was('NIMBUS_LISTEN') : undefined) ?? spec.listen);
  await ask(QUESTIONS.nextHop, (sameWay ? was('NIMBUS_NEXT_HOP') : undefined) ?? spec.nextHop, (value) =>
    spec.needsNextHop && blank(value) ? `${way}: Postfix takes the mail back from Nimbus: give its reinjection smtpd (${spec.nextHop} in docs/admin/postfix.md)` : null);

  await participation(source, was, ask, record);

  await ask(QUESTIONS.dnsLists, was('NIMBUS_DNS_LISTS') ?? '');
  await ask(QUESTIONS.authChecks, was('NIMBUS_AUTH_CHECKS') ?? 'no');
  await ask(QUESTIONS.spamAction, was('NIMBUS_SPAM_ACTION') ?? 'tag', (value) =>
    !spec.canReject && value.trim().toLowerCase() === 'reject' ? `${way}: Postfix has queued the mail already, so rejecting would make it bounce to the sender (backscatter): use tag, quarantine or discard` : null);
  const tagScore = await ask(QUESTIONS.tagScore, was('NIMBUS_TAG_SCORE') ?? '5');
  await ask(QUESTIONS.rejectScore, was('NIMBUS_REJECT_SCORE') ?? '15', (value) => (Number(value) < Number(tagScore) ? `expected a number >= the tag score (${tagScore})` : null));
  await ask(QUESTIONS.subjectTag, was('NIMBUS_SUBJECT_TAG') ?? '');
  return { way, answers };
}

/**
 * Participation, then (for standard or extended) the statement shown in full and accepted, the
 * service and the key. Declining the statement on the terminal leaves participation off; by
 * flags, `standard` without `--accept-statement yes` is refused.
 */
async function participation(
  source: AnswerSource,
  was: (name: string) => string | undefined,
  ask: (question: Question, fallback: string, check?: Check) => Promise<string>,
  record: (question: Question, value: string) => string,
): Promise<void> {
  const mode = record(QUESTIONS.participation, await source.answer(QUESTIONS.participation, was('NIMBUS_PARTICIPATION') ?? 'off'));
  if (mode === 'off') return;
  const interactive = source.asks(QUESTIONS.acceptStatement);
  if (interactive) source.say(`\n${statementText()}`);
  const acceptedBefore = ['yes', 'true', '1', 'on'].includes(was('NIMBUS_ACCEPT_STATEMENT')?.trim().toLowerCase() ?? '') && was('NIMBUS_PARTICIPATION')?.trim().toLowerCase() === mode;
  const acceptance = record(QUESTIONS.acceptStatement, await source.answer(QUESTIONS.acceptStatement, acceptedBefore ? 'yes' : 'no'));
  if (acceptance !== 'yes') {
    if (!interactive) throw new SetupUsageError(`--participation ${mode} needs --accept-statement yes: read \`nimbus statement\` first (or choose --participation off)`);
    source.say('Not accepted: participation stays off.');
    record(QUESTIONS.participation, 'off');
    return;
  }
  await ask(QUESTIONS.reputationUrl, was('NIMBUS_REPUTATION_URL') ?? '', (value) => (blank(value) ? `participation ${mode} needs the reputation service's URL` : null));
  await ask(QUESTIONS.reputationKey, was('NIMBUS_REPUTATION_KEY') ?? '', (value) => (blank(value) ? 'the service needs a key for this gateway (`nimbus keys add --role reporter` on the service)' : null));
}
