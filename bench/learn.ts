/**
 * `npm run bench -- learn [CORPUS_DIR] [--json] [--write]`
 *
 * `nimbus learn`'s speed with its own code (src/scan/learn.ts) into a fresh embedded engine in a
 * temp data dir: the corpus's `spam/` learnt as spam, then its `ham/` as ham (default corpus
 * `../shared/corpus`), then both again (every message already known: the idempotent re-run).
 * Figures: messages/s of the first pass (target ≥ 200, issue 19), CPU ms per message (the
 * process's user + system time, which the machine's other load changes less than wall time),
 * and the re-run's messages/s. With --write the marked block of BENCHMARKS.md's Learn section is
 * replaced.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdminReports } from '../src/scan/admin-reports.js';
import { learnPaths, type LearnSummary } from '../src/scan/learn.js';
import { ReportedMessages } from '../src/scan/reported-messages.js';
import { localReputationPath, openLocalReputation } from '../src/scan/runtime.js';
import { writeMarkedBlock } from './benchmarks-block.js';

const here = dirname(fileURLToPath(import.meta.url));
const TARGET = 200;
const BEGIN = '<!-- bench learn: table -->';
const END = '<!-- /bench learn -->';

interface Pass {
  readonly messages: number;
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly summaries: readonly LearnSummary[];
}

async function pass(reports: AdminReports, corpus: string): Promise<Pass> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const summaries = [await learnPaths('spam', [join(corpus, 'spam')], reports), await learnPaths('ham', [join(corpus, 'ham')], reports)];
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const messages = summaries.reduce((sum, s) => sum + s.learnt + s.known + s.unreadable.length, 0);
  return { messages, seconds, cpuSeconds: (used.user + used.system) / 1e6, summaries };
}

export async function run(args: string[]): Promise<number> {
  const json = args.includes('--json');
  const write = args.includes('--write');
  const corpus = resolve(args.find((a) => !a.startsWith('--')) ?? join(here, '..', '..', 'shared', 'corpus'));
  const dataDir = mkdtempSync(join(os.tmpdir(), 'nimbus-bench-learn-'));
  const load = os.loadavg()[0]!;
  const config = { dataDir, relayDomains: [], hostname: 'bench.invalid', trustedNetworks: ['127.0.0.0/8', '::1/128'] };
  const local = await openLocalReputation(config);
  const record = new ReportedMessages(localReputationPath(config));
  let first: Pass;
  let again: Pass;
  try {
    const reports = new AdminReports(local.engine, record, { ownNames: [config.hostname] });
    first = await pass(reports, corpus);
    again = await pass(reports, corpus);
  } finally {
    record.close();
    await local.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  const figures = {
    date: new Date().toISOString().slice(0, 16).replace('T', ' '),
    cpus: os.cpus().length,
    cpu_model: os.cpus()[0]?.model ?? 'unknown',
    load_average_at_start: Math.round(load * 10) / 10,
    messages: first.messages,
    learnt: first.summaries.reduce((sum, s) => sum + s.learnt, 0),
    unreadable: first.summaries.reduce((sum, s) => sum + s.unreadable.length, 0),
    messages_per_second: Math.round(first.messages / first.seconds),
    cpu_ms_per_message: Math.round((first.cpuSeconds * 1000 * 100) / first.messages) / 100,
    rerun_messages_per_second: Math.round(again.messages / again.seconds),
    rerun_learnt: again.summaries.reduce((sum, s) => sum + s.learnt, 0),
    target_met: first.messages / first.seconds >= TARGET,
  };
  process.stdout.write(json ? `${JSON.stringify(figures)}\n` : `${JSON.stringify(figures, null, 2)}\n`);
  if (write) {
    if (!writeMarkedBlock(join(here, '..', 'BENCHMARKS.md'), BEGIN, END, table(figures, args))) {
      process.stderr.write(`bench learn: no ${BEGIN} … ${END} block in BENCHMARKS.md, nothing written\n`);
      return 1;
    }
  }
  return 0;
}

function table(f: Record<string, string | number | boolean>, args: readonly string[]): string {
  return [
    `Run of ${String(f.date)} UTC, \`npm run bench -- learn ${args.join(' ')}\`, on ${String(f.cpus)} cores (${String(f.cpu_model)}), shared and loaded: load average ${String(f.load_average_at_start)} at the start.`,
    '',
    '| figure | measured | target |',
    '|---|---|---|',
    `| messages learnt / s, whole corpus (${String(f.messages)} messages: spam/ as spam, ham/ as ham) | ${String(f.messages_per_second)} | ≥ ${TARGET}: **${f.target_met ? 'met' : 'missed'}** |`,
    `| CPU ms per message (user + system), and the messages / s that makes on one free core | ${String(f.cpu_ms_per_message)}, ${String(Math.round(1000 / Number(f.cpu_ms_per_message)))} | |`,
    `| not learnt (no fingerprints) | ${String(f.unreadable)} | |`,
    `| the same again (every message already known), messages / s; learnt again | ${String(f.rerun_messages_per_second)}; ${String(f.rerun_learnt)} | 0 learnt again |`,
    '',
  ].join('\n');
}
