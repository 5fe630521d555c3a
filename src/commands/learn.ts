/**
 * `nimbus learn --spam|--ham PATH…`: teaches the embedded engine the admin's existing mail
 * (src/scan/learn.ts), and the local statistical classifier its words (src/bayes). A PATH is a message file, an mbox, a Maildir or a directory tree of them.
 * On a terminal a progress bar (messages, rate, ETA) is drawn on stderr; a summary follows on
 * stdout, naming each message that could not be learnt and why.
 *
 * Exit status: 0 when every message was learnt (or known already); 1 when some could not be
 * read or held no fingerprints (the others were learnt); 64 usage.
 */
import { BayesStore } from '../bayes/store.js';
import { loadConfig } from '../config/index.js';
import type { FeedbackLabel } from '../reputation/engine-types.js';
import { AdminReports } from '../scan/admin-reports.js';
import { learnPaths, type LearnProgress, type LearnSummary } from '../scan/learn.js';
import { siteOf } from '../scan/offline.js';
import { ReportedMessages } from '../scan/reported-messages.js';
import { localReputationPath, openLocalReputation } from '../scan/runtime.js';

export const EXIT_USAGE = 64;
export const EXIT_PARTIAL = 1;

const USAGE = 'usage: nimbus learn --spam|--ham PATH… (a message file, an mbox, a Maildir or a directory of them)\n';
/** The bar is redrawn at most this often: a terminal repainting per message would cost more than the learning. */
const REDRAW_MS = 100;
const BAR_WIDTH = 24;

function duration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = String(seconds % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** One line: `[#####…] 45% 1,234 messages 310/s ETA 0:12` (ETA from the bytes left at the bytes' rate). */
export function progressLine(p: LearnProgress): string {
  const share = p.bytesTotal === 0 ? 1 : Math.min(1, p.bytesDone / p.bytesTotal);
  const filled = Math.round(share * BAR_WIDTH);
  const rate = p.elapsedMs > 0 ? (p.messages * 1000) / p.elapsedMs : 0;
  const eta = share > 0 && share < 1 ? duration((p.elapsedMs * (1 - share)) / share) : share >= 1 ? '0:00' : '?';
  return `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${Math.floor(share * 100)}% ${p.messages.toLocaleString('en')} messages ${Math.round(rate)}/s ETA ${eta}`;
}

export function formatSummary(summary: LearnSummary): string {
  const rate = summary.elapsedMs > 0 ? Math.round(((summary.learnt + summary.known + summary.unreadable.length) * 1000) / summary.elapsedMs) : 0;
  const lines = [
    `learnt as ${summary.label}: ${summary.learnt} messages${summary.relabelled > 0 ? ` (${summary.relabelled} of them learnt before with the other label)` : ''}`,
    `already known: ${summary.known}`,
    `unreadable: ${summary.unreadable.length}`,
    ...summary.unreadable.map((u) => `  ${u.name}: ${u.reason}`),
    `in ${(summary.elapsedMs / 1000).toFixed(1)} s (${rate} messages/s)`,
  ];
  return `${lines.join('\n')}\n`;
}

export async function run(args: string[]): Promise<number> {
  const labels = args.filter((a) => a === '--spam' || a === '--ham');
  const unknown = args.find((a) => a.startsWith('-') && a !== '--spam' && a !== '--ham');
  const paths = args.filter((a) => !a.startsWith('-'));
  if (unknown || labels.length !== 1 || paths.length === 0) {
    process.stderr.write(`nimbus learn: ${unknown ? `unknown option ${unknown}` : labels.length !== 1 ? 'say exactly one of --spam or --ham' : 'name at least one path'}\n${USAGE}`);
    return EXIT_USAGE;
  }
  const label: FeedbackLabel = labels[0] === '--spam' ? 'spam' : 'ham';
  const config = loadConfig();
  const local = await openLocalReputation(config);
  const record = new ReportedMessages(localReputationPath(config));
  const bayes = new BayesStore(localReputationPath(config));
  const terminal = process.stderr.isTTY === true;
  let drawn = 0;
  const onProgress = (p: LearnProgress): void => {
    const now = performance.now();
    if (now - drawn < REDRAW_MS && p.bytesDone < p.bytesTotal) return;
    drawn = now;
    process.stderr.write(`\r${progressLine(p)}\x1b[K`);
  };
  try {
    const summary = await learnPaths(label, paths, new AdminReports(local.engine, record, siteOf(config), bayes), terminal ? { onProgress } : {});
    if (terminal) process.stderr.write('\n');
    process.stdout.write(formatSummary(summary));
    return summary.unreadable.length > 0 ? EXIT_PARTIAL : 0;
  } finally {
    record.close();
    bayes.close();
    await local.close();
  }
}
