/**
 * The day-one evaluation (issue 19, `npm run eval -- --history-split F`): what a new gateway
 * catches from the admin's mail history alone. The corpus in time order (by Date) is cut at F:
 * the older part is written out as the admin's folders (spam/ and ham/) and taught with the
 * product's own `nimbus learn`; the engine file it made is copied into every gateway's data dir.
 * The newer part is then replayed once per message (no campaign copies), with no spam traps and
 * no reports, through that network and through one with nothing learnt (the baseline): the
 * difference is what the history taught.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CorpusMessage } from './corpus.js';
import { runCli } from './network.js';
import { timeOrder, type Plan } from './plan.js';
import { detectionSvg, type Series } from './plot.js';
import type { Outcome } from './replay.js';
import { writeMarkedBlock } from '../benchmarks-block.js';

export interface HistorySplit {
  readonly older: readonly CorpusMessage[];
  readonly newer: readonly CorpusMessage[];
  /** ISO date of the first message of the newer part (null when undated). */
  readonly cut: string | null;
}

/** The corpus (spam and ham together) in time order, cut after the first `fraction` of it. */
export function splitHistory(messages: readonly CorpusMessage[], fraction: number): HistorySplit {
  const ordered = timeOrder(messages);
  const at = Math.floor(ordered.length * fraction);
  const first = ordered[at]?.date ?? null;
  return { older: ordered.slice(0, at), newer: ordered.slice(at), cut: first === null ? null : new Date(first).toISOString().slice(0, 10) };
}

export interface Learnt {
  /** The embedded engine file `nimbus learn` wrote. */
  readonly engineFile: string;
  /** `nimbus learn`'s summaries, as printed. */
  readonly output: { readonly spam: string; readonly ham: string };
  readonly seconds: number;
}

/** Writes the older part as the admin's two folders and runs `nimbus learn` on each. */
export async function learnHistory(cli: string, root: string, older: readonly CorpusMessage[], dir: string, env: NodeJS.ProcessEnv): Promise<Learnt> {
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  for (const label of ['spam', 'ham'] as const) {
    mkdirSync(join(dir, label), { recursive: true });
    for (const message of older.filter((m) => m.class === label)) writeFileSync(join(dir, label, message.file.replace(/^.*\//, '')), message.raw);
  }
  const started = Date.now();
  const output = { spam: '', ham: '' };
  for (const label of ['spam', 'ham'] as const) {
    const result = await runCli(cli, root, ['learn', `--${label}`, join(dir, label)], { ...env, NIMBUS_DATA_DIR: dataDir, NIMBUS_PARTICIPATION: 'off' });
    // 1: some messages could not be learnt (named in the output); anything else is a failure.
    if (result.status !== 0 && result.status !== 1) throw new Error(`nimbus learn --${label} failed (${result.status}): ${result.stderr}`);
    output[label] = result.stdout.trim();
  }
  return { engineFile: join(dataDir, 'local-reputation.sqlite'), output, seconds: Math.round((Date.now() - started) / 1000) };
}

export interface HistoryFigures {
  /** Share of the newer spam flagged (every delivery counts: there is one per message). */
  readonly detection_rate: number;
  readonly spam_count: number;
  /**
   * Spam holding at least one fingerprint the engine answered `spam` for (caught or not): what
   * the history could teach at most; the rest of the gap to it is the score (weights, tag score).
   */
  readonly convicted_present: number;
  /** Of the spam not caught, which kinds held a convicted fingerprint (kinds joined by `+`). */
  readonly missed_convicted_kinds: Record<string, number>;
  readonly false_positives: number;
  readonly ham_count: number;
  readonly errors: number;
  /** Detection in each tenth of the replay, in time order. */
  readonly by_tenth: readonly { readonly tenth: number; readonly spam: number; readonly caught: number; readonly rate: number }[];
  /** Of the caught spam, how many times each test fired. */
  readonly tests: Record<string, number>;
}

const pct = (part: number, whole: number): number => (whole === 0 ? 0 : Math.round((10_000 * part) / whole) / 100);

export function historyFigures(plan: Plan, outcomes: readonly Outcome[]): HistoryFigures {
  const sent = outcomes.filter((o) => o.how !== 'error');
  const spam = sent.filter((o) => o.kind === 'spam');
  const ham = sent.filter((o) => o.kind === 'ham');
  const tenths = Array.from({ length: 10 }, (_, i) => ({ tenth: i + 1, spam: 0, caught: 0, rate: 0 }));
  for (const o of spam) {
    const tenth = tenths[Math.min(9, Math.floor((10 * o.seq) / Math.max(1, plan.events.length)))]!;
    tenth.spam++;
    if (o.flagged) tenth.caught++;
  }
  for (const tenth of tenths) tenth.rate = pct(tenth.caught, tenth.spam);
  const tests: Record<string, number> = {};
  for (const o of spam) if (o.flagged) for (const test of o.tests) tests[test] = (tests[test] ?? 0) + 1;
  const convicted = (o: Outcome): string[] => [...new Set(o.entries.filter((e) => e.verdict === 'spam').map((e) => e.kind))].sort();
  const missedKinds: Record<string, number> = {};
  for (const o of spam) {
    const kinds = convicted(o);
    if (!o.flagged && kinds.length > 0) missedKinds[kinds.join('+')] = (missedKinds[kinds.join('+')] ?? 0) + 1;
  }
  return {
    detection_rate: pct(spam.filter((o) => o.flagged).length, spam.length),
    spam_count: spam.length,
    convicted_present: spam.filter((o) => convicted(o).length > 0).length,
    missed_convicted_kinds: missedKinds,
    false_positives: ham.filter((o) => o.flagged).length,
    ham_count: ham.length,
    errors: outcomes.length - sent.length,
    by_tenth: tenths,
    tests,
  };
}

export interface HistoryResults {
  readonly command: string;
  readonly date: string;
  readonly machine: { readonly cpus: number; readonly loadavg_at_start: readonly number[]; readonly node: string };
  readonly split: { readonly fraction: number; readonly cut: string | null; readonly older_spam: number; readonly older_ham: number; readonly newer_spam: number; readonly newer_ham: number };
  readonly learnt: Learnt['output'];
  readonly seconds: Record<string, number>;
  readonly history: HistoryFigures;
  readonly baseline: HistoryFigures;
  readonly summary: { readonly detection_rate: number; readonly false_positives: number; readonly ham_count: number; readonly baseline_detection_rate: number };
}

export function historySvg(results: HistoryResults): string {
  const series: Series[] = [
    { label: 'history learnt (nimbus learn)', colour: '#1f77b4', points: results.history.by_tenth.map((t) => [t.tenth, t.rate] as const) },
    { label: 'nothing learnt', colour: '#d62728', dashed: true, points: results.baseline.by_tenth.map((t) => [t.tenth, t.rate] as const) },
  ];
  const s = results.split;
  return detectionSvg(series, {
    title: 'Day one: the newer mail caught from the older mail alone',
    subtitle: `learnt ${s.older_spam} spam and ${s.older_ham} ham dated before ${s.cut ?? '?'}; replayed ${s.newer_spam} spam and ${s.newer_ham} ham after | no spam traps, no reports, no service; false positives ${results.history.false_positives} (learnt), ${results.baseline.false_positives} (nothing learnt)`,
    target: { from: 1, rate: 25 },
    xLabel: 'tenth of the newer mail, in time order',
    yLabel: 'spam caught',
  });
}

export const HISTORY_BLOCK_START = '<!-- eval history -->';
export const HISTORY_BLOCK_END = '<!-- /eval history -->';

export function historyMarkdown(results: HistoryResults, png: string): string {
  const h = results.history;
  const b = results.baseline;
  const s = results.split;
  const yes = (ok: boolean): string => (ok ? '**met**' : '**missed**');
  const tests = Object.entries(h.tests).sort((x, y) => y[1] - x[1]).slice(0, 8).map(([name, n]) => `${name} ${n}`).join(', ');
  return [
    `Run of ${results.date.slice(0, 16).replace('T', ' ')} UTC, \`${results.command}\`, on ${results.machine.cpus} cores (AMD EPYC), shared and loaded: load average ${results.machine.loadavg_at_start.join(', ')} at the start; Node ${results.machine.node}.`,
    '',
    `Learnt with \`nimbus learn\` (${results.seconds.learn ?? 0} s): ${s.older_spam} spam and ${s.older_ham} ham dated before ${s.cut ?? '?'}. Replayed: the ${s.newer_spam} spam and ${s.newer_ham} ham after, once each, through 5 gateways (\`NIMBUS_PARTICIPATION=off\`), no spam traps, no reports.`,
    '',
    '| figure | history learnt | nothing learnt | target |',
    '|---|---|---|---|',
    `| **spam caught** | **${h.detection_rate}%** (${Math.round((h.detection_rate * h.spam_count) / 100)} of ${h.spam_count}) | ${b.detection_rate}% | ≥ 25%: ${yes(h.detection_rate >= 25)} |`,
    `| spam holding a fingerprint the engine called spam (caught or not) | ${h.convicted_present} (${pct(h.convicted_present, h.spam_count)}%) | ${b.convicted_present} | |`,
    `| of those not caught, the kinds called spam | ${Object.entries(h.missed_convicted_kinds).sort((x, y) => y[1] - x[1]).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'} | | |`,
    `| **false positives on ham** | **${h.false_positives} of ${h.ham_count}** | ${b.false_positives} of ${b.ham_count} | 0: ${yes(h.false_positives === 0)} |`,
    `| spam caught per tenth of the replay | ${h.by_tenth.map((t) => `${t.rate}%`).join(', ')} | ${b.by_tenth.map((t) => `${t.rate}%`).join(', ')} | |`,
    `| send errors | ${h.errors} | ${b.errors} | |`,
    `| replay time | ${results.seconds.history ?? 0} s | ${results.seconds.baseline ?? 0} s | |`,
    '',
    `Tests on the caught spam: ${tests || 'none'}.`,
    '',
    `![spam caught per tenth of the newer mail, history learnt and nothing learnt](${png})`,
    '',
  ].join('\n');
}

/** Replaces what lies between the markers of BENCHMARKS.md's Day one section (kept by hand around it). */
export function writeHistoryBlock(file: string, block: string): void {
  if (!writeMarkedBlock(file, HISTORY_BLOCK_START, HISTORY_BLOCK_END, block)) throw new Error(`no ${HISTORY_BLOCK_START} … ${HISTORY_BLOCK_END} block in ${file}`);
}
