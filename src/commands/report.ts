/**
 * `nimbus report --spam|--ham FILE.eml…`: the admin's (or a user's, through the admin) verdict
 * on messages. The embedded engine learns at once and trusts it; the service hears it as this
 * gateway's voice, only while participation allows and only what the mode may send.
 *
 * Exit status: 0 when every message was learnt locally and, when participating, delivered to the
 * service; 1 when a file could not be read or parsed, or the key may not send feedback (403); 75
 * (EX_TEMPFAIL) when the service could not be reached (the local engine learnt anyway: run the command again later to tell the service).
 */
import { readFile } from 'node:fs/promises';
import { loadConfig } from '../config/index.js';
import { createLogger } from '../log.js';
import type { FeedbackLabel } from '../reputation/engine-types.js';
import { analyseBytes } from '../scan/analyse.js';
import { splitMessages } from '../scan/mbox.js';
import { siteOf } from '../scan/offline.js';
import { openCommandReputation } from '../scan/runtime.js';

export const EXIT_USAGE = 64;
export const EXIT_FAILED = 1;
export const EXIT_TEMPFAIL = 75;

const USAGE = 'usage: nimbus report --spam|--ham FILE.eml… (a file may be an mbox; - reads stdin)\n';

async function readInput(file: string): Promise<Buffer> {
  if (file !== '-') return readFile(file);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function run(args: string[]): Promise<number> {
  const labels = args.filter((a) => a === '--spam' || a === '--ham');
  const unknown = args.find((a) => a.startsWith('-') && a !== '-' && a !== '--spam' && a !== '--ham');
  const files = args.filter((a) => !a.startsWith('-') || a === '-');
  if (unknown || labels.length !== 1 || files.length === 0) {
    process.stderr.write(`nimbus report: ${unknown ? `unknown option ${unknown}` : labels.length !== 1 ? 'say exactly one of --spam or --ham' : 'name at least one message file'}\n${USAGE}`);
    return EXIT_USAGE;
  }
  const label: FeedbackLabel = labels[0] === '--spam' ? 'spam' : 'ham';
  const config = loadConfig();
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, { service: 'report' });
  const reputation = await openCommandReputation(config, log);
  const site = siteOf(config);
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
        const found = await analyseBytes(message, { clientIp: null, site, keepAttachmentBytes: 0, imageHashes: undefined });
        if (found.fingerprints.length === 0) {
          process.stderr.write(`nimbus report: ${name}: no fingerprints (${found.skips.map((s) => s.reason).join(', ') || 'empty message'}); nothing learnt\n`);
          status = EXIT_FAILED;
          continue;
        }
        const result = await reputation.feedback.report(label, found.fingerprints, 'admin');
        process.stdout.write(`${name}: reported as ${label}: ${result.local} fingerprints learnt locally; service: ${result.remote}\n`);
        if (result.remote === 'failed' && status === 0) status = EXIT_TEMPFAIL;
        if (result.remote === 'forbidden') {
          process.stderr.write(`nimbus report: the service refused feedback from NIMBUS_REPUTATION_KEY (403: its role may not report; use a reporter or admin key)\n`);
          status = EXIT_FAILED;
        }
      }
    }
  } finally {
    await reputation.close();
  }
  return status;
}
