/**
 * `nimbus report --spam|--ham FILE.eml…`: the admin's (or a user's, through the admin) verdict
 * on messages. The embedded engine learns at once and trusts it; the service hears it as this
 * gateway's voice, only while participation allows and only what the mode may send. Each
 * reported message is recorded (src/scan/reported-messages.ts), so `nimbus report --forget
 * FILE…` can take back exactly the local evidence a mistaken report added.
 *
 * Exit status: 0 when every message was learnt (or forgotten) locally and, when participating,
 * delivered to the service; 1 when a file could not be read or parsed, or the key may not send
 * feedback (403); 75 (EX_TEMPFAIL) when the service could not be reached (the local engine
 * learnt anyway: run the command again later to tell the service).
 */
import { readFile } from 'node:fs/promises';
import { loadConfig } from '../config/index.js';
import { createLogger } from '../log.js';
import type { FeedbackLabel } from '../reputation/engine-types.js';
import { AdminReports, type AnalysedStored } from '../scan/admin-reports.js';
import { authFingerprints } from '../scan/auth-policy.js';
import { splitMessages } from '../scan/mbox.js';
import { siteOf } from '../scan/offline.js';
import { ReportedMessages } from '../scan/reported-messages.js';
import { localReputationPath, openCommandReputation, type CommandReputation } from '../scan/runtime.js';

export const EXIT_USAGE = 64;
export const EXIT_FAILED = 1;
export const EXIT_TEMPFAIL = 75;

const USAGE = 'usage: nimbus report --spam|--ham|--forget FILE.eml… (a file may be an mbox; - reads stdin)\n';
const MODES = ['--spam', '--ham', '--forget'] as const;
type Mode = (typeof MODES)[number];

async function readInput(file: string): Promise<Buffer> {
  if (file !== '-') return readFile(file);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function run(args: string[]): Promise<number> {
  const modes = args.filter((a): a is Mode => (MODES as readonly string[]).includes(a));
  const unknown = args.find((a) => a.startsWith('-') && a !== '-' && !(MODES as readonly string[]).includes(a));
  const files = args.filter((a) => !a.startsWith('-') || a === '-');
  if (unknown || modes.length !== 1 || files.length === 0) {
    process.stderr.write(`nimbus report: ${unknown ? `unknown option ${unknown}` : modes.length !== 1 ? 'say exactly one of --spam, --ham or --forget' : 'name at least one message file'}\n${USAGE}`);
    return EXIT_USAGE;
  }
  const config = loadConfig();
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, { service: 'report' });
  const reputation = await openCommandReputation(config, log);
  const record = new ReportedMessages(localReputationPath(config));
  const reports = new AdminReports(reputation.local.engine, record, siteOf(config));
  let status = 0;
  try {
    for (const file of files) {
      let raw: Buffer;
      try {
        raw = await readInput(file);
      } catch (error) {
        process.stderr.write(`nimbus report: cannot read ${file}: ${error instanceof Error ? error.message : String(error)}\n`);
        status = EXIT_FAILED;
        continue;
      }
      const messages = splitMessages(raw);
      for (const [index, message] of messages.entries()) {
        const name = messages.length > 1 ? `${file}#${index + 1}` : file;
        const outcome = modes[0] === '--forget' ? await forget(reports, reputation, name, message) : await report(reports, reputation, modes[0] === '--spam' ? 'spam' : 'ham', name, message);
        if (outcome !== 0 && (status === 0 || outcome === EXIT_FAILED)) status = outcome;
      }
    }
  } finally {
    record.close();
    await reputation.close();
  }
  return status;
}

/**
 * The message's fingerprints, with the sender domains it proves by itself (NIMBUS_AUTH_CHECKS=on):
 * its passing DKIM signatures, and DMARC on them. SPF needs the client's address, which a message
 * file does not carry trustworthily, so it is not checked here.
 */
async function analyse(reports: AdminReports, reputation: CommandReputation, name: string, message: Buffer): Promise<AnalysedStored> {
  const found = await reports.analyse(message);
  const authenticator = reputation.authentication;
  if (authenticator === null) return found;
  const client = { ip: null, helo: '', name: null, trusted: false };
  const results = await authenticator.check({ message, envelope: { mailFrom: '', rcptTo: [] }, client, budget: authenticator.resolver.budget() }, name);
  const domains = authFingerprints(results);
  return domains.length === 0 ? found : { ...found, fingerprints: [...found.fingerprints, ...domains], empty: null };
}

async function report(reports: AdminReports, reputation: CommandReputation, label: FeedbackLabel, name: string, message: Buffer): Promise<number> {
  const found = await analyse(reports, reputation, name, message);
  if (found.empty !== null) {
    process.stderr.write(`nimbus report: ${name}: ${found.empty}; nothing learnt\n`);
    return EXIT_FAILED;
  }
  const result = await reputation.feedback.report(label, found.fingerprints, 'admin');
  await reports.recorded(label, [found]);
  process.stdout.write(`${name}: reported as ${label}: ${result.local} fingerprints learnt locally; service: ${result.remote}\n`);
  if (result.remote === 'forbidden') {
    process.stderr.write(`nimbus report: the service refused feedback from NIMBUS_REPUTATION_KEY (403: its role may not report; use a reporter or admin key)\n`);
    return EXIT_FAILED;
  }
  return result.remote === 'failed' ? EXIT_TEMPFAIL : 0;
}

async function forget(reports: AdminReports, reputation: CommandReputation, name: string, message: Buffer): Promise<number> {
  const found = await analyse(reports, reputation, name, message);
  const result = await reports.forget(found);
  const was = result.label === null ? 'not in the record of reported messages; its fingerprints no reported message holds' : `reported as ${result.label}`;
  process.stdout.write(`${name}: forgotten (${was}): the local evidence of ${result.withdrawn} fingerprints withdrawn\n`);
  // The service has no undo for one voice: its admin overrides a verdict (nimbus verdict --service).
  if (reputation.participating) process.stdout.write(`${name}: the reputation service keeps what it was told; its admin can override a fingerprint with nimbus verdict --service\n`);
  return 0;
}
