/**
 * `npm run eval -- --history-split F`: the day-one evaluation of issue 19 (bench/eval/history.ts
 * says what it measures); run by bench/eval.ts.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CorpusMessage } from './corpus.js';
import { historyFigures, historyMarkdown, historySvg, learnHistory, splitHistory, writeHistoryBlock, type HistoryResults } from './history.js';
import { buildProduct } from './network.js';
import { buildPlan, type PlanEvent } from './plan.js';
import { svgToPng } from './plot.js';
import { runNetwork, type RunOptions } from './run-network.js';

export interface DayOneArgs extends RunOptions {
  readonly historySplit: number;
  readonly seed: string;
  readonly gateways: number;
  readonly limit: number | null;
  readonly json: boolean;
  readonly keep: boolean;
  readonly write: boolean;
  readonly out: string;
  /** Where bench/results is. */
  readonly results: string;
}

const log = (text: string): void => {
  process.stderr.write(`${text}\n`);
};

/**
 * The day-one eval (bench/eval/history.ts): the older part of the corpus learnt with `nimbus
 * learn`, the newer replayed once per message with no traps and no reports, beside the same
 * replay with nothing learnt. Writes bench/results/eval-history.json and -detection.png and the
 * `## Day one` block of BENCHMARKS.md; --json prints detection_rate, false_positives, ham_count
 * and baseline_detection_rate.
 */
export async function runDayOne(args: DayOneArgs, messages: readonly CorpusMessage[], loadAtStart: number[], began: number): Promise<number> {
  const split = splitHistory(messages, args.historySplit);
  const newer = { spam: split.newer.filter((m) => m.class === 'spam'), ham: split.newer.filter((m) => m.class === 'ham') };
  const plan = buildPlan(newer.spam, newer.ham, { seed: args.seed, gateways: args.gateways, copies: 1, limit: args.limit, trapCopies: 0, reportRate: 0, hamMistakeRate: 0 });
  log(`day one: learn ${split.older.length} messages dated before ${split.cut ?? '?'}, replay ${plan.events.length} after (${newer.spam.length} spam, ${newer.ham.length} ham)`);
  const workDir = mkdtempSync(join(tmpdir(), 'nimbus-eval-history-'));
  try {
    log('building the product into .tmp/eval-dist');
    const cliPath = await buildProduct(args.root);
    const learnt = await learnHistory(cliPath, args.root, split.older, join(workDir, 'history'), process.env);
    log(`nimbus learn: ${learnt.output.spam.split('\n')[0]}; ${learnt.output.ham.split('\n')[0]} (${learnt.seconds} s)`);
    const messageOf = (event: PlanEvent): Buffer => (event.kind === 'ham' ? event.message.raw : plan.campaigns[event.campaign]!.message.raw);
    const options = args;
    const history = await runNetwork(plan, 'off', join(workDir, 'learnt'), { ...options, localReputation: learnt.engineFile }, cliPath, messageOf, 'history learnt');
    const baseline = await runNetwork(plan, 'off', join(workDir, 'nothing'), options, cliPath, messageOf, 'nothing learnt');
    const h = historyFigures(plan, history.outcomes);
    const b = historyFigures(plan, baseline.outcomes);
    const command = ['npm run eval --', ...process.argv.slice(2).filter((arg) => arg !== '--keep' && arg !== '--no-write')].join(' ');
    const results: HistoryResults = {
      command,
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, loadavg_at_start: loadAtStart, node: process.version },
      split: { fraction: args.historySplit, cut: split.cut, older_spam: split.older.filter((m) => m.class === 'spam').length, older_ham: split.older.filter((m) => m.class === 'ham').length, newer_spam: newer.spam.length, newer_ham: newer.ham.length },
      learnt: learnt.output,
      seconds: { learn: learnt.seconds, history: history.seconds, baseline: baseline.seconds, total: Math.round((Date.now() - began) / 1000) },
      history: h,
      baseline: b,
      summary: { detection_rate: h.detection_rate, false_positives: h.false_positives, ham_count: h.ham_count, baseline_detection_rate: b.detection_rate },
    };
    if (args.write) {
      const name = args.out === 'eval' ? 'eval-history' : args.out;
      mkdirSync(args.results, { recursive: true });
      writeFileSync(join(args.results, `${name}.json`), `${JSON.stringify(results, null, 2)}\n`);
      writeFileSync(join(args.results, `${name}-detection.png`), await svgToPng(historySvg(results)));
      if (args.out === 'eval') writeHistoryBlock(join(args.root, 'BENCHMARKS.md'), historyMarkdown(results, `bench/results/${name}-detection.png`));
      log(`wrote bench/results/${name}.json, bench/results/${name}-detection.png${args.out === 'eval' ? ' and the Day one block of BENCHMARKS.md' : ''}`);
    }
    log(`day one: ${h.detection_rate}% of the newer spam caught from history (${b.detection_rate}% with nothing learnt); false positives ${h.false_positives}/${h.ham_count}`);
    if (args.json) process.stdout.write(`${JSON.stringify(results.summary)}\n`);
    return 0;
  } finally {
    if (args.keep) log(`work directory kept: ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  }
}
