/**
 * `npm run eval [-- CORPUS_DIR] [--gateways K] [--copies N] [--seed S] [--limit L] [--json]`:
 * detection on real mail by a network of gateways (issue 8).
 *
 * One reputation service and K gateways, all real processes on loopback, replay the corpus:
 * every spam message becomes a campaign of N realistic copies (bench/eval/variants.ts) sent in
 * time order to random gateways, the first to a spam trap, with ham interleaved; users report 10%
 * of the spam delivered to them and 1% of ham by mistake. The same plan is then replayed by a
 * fresh network whose gateways do not participate (`off`: local learning only).
 *
 * Writes bench/results/eval.json (every figure), bench/results/eval-detection.png (the plot) and
 * the `## Evaluation` block of BENCHMARKS.md (unless --no-write). With --json, prints one JSON
 * object with the six figures the issue names. Progress goes to stderr.
 *
 * Other options: --concurrency C (SMTP transactions in flight, default 8), --trap-copies T
 * (default 1), --report-rate R (0.1), --ham-mistake-rate R (0.01), --lookup-timeout-ms MS (2000:
 * see network.ts), --key-role reporter|admin|split (keys at the service, see network.ts; default
 * split: one organisation's private network, where each gateway holds the organisation's admin
 * key, so its spam traps are trusted, and users' reports come with reporter keys, one voice each;
 * `reporter` models gateways of different organisations at a shared service), --out NAME (results as bench/results/NAME.json and
 * NAME-detection.png; only the default `eval` writes BENCHMARKS.md), --gateway-env NIMBUS_X=V
 * (repeatable: extra configuration of every gateway, for experiments such as kind weights),
 * --no-baseline, --keep (keep the work directory), --no-write.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listCorpus, readCorpusMessage } from './eval/corpus.js';
import { computeFigures, type RunFigures } from './eval/figures.js';
import { evalMarkdown, writeBenchmarksBlock, type EvalResults } from './eval/markdown.js';
import { buildProduct, startNetwork, type KeyRole, type Participation } from './eval/network.js';
import { buildPlan, DEFAULT_PLAN, type Plan, type PlanEvent } from './eval/plan.js';
import { resultsSvg, svgToPng } from './eval/plot.js';
import { formatSeconds, Progress } from './eval/progress.js';
import { replay } from './eval/replay.js';
import { startSink } from './eval/sink.js';
import { makeVariant, type VariantReport } from './eval/variants.js';
import { VARIABLES } from '../src/config/table.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = join(here, '..');
const RESULTS = join(here, 'results');
const EX_USAGE = 64;

interface Args {
  corpus: string;
  gateways: number;
  copies: number;
  seed: string;
  limit: number | null;
  json: boolean;
  concurrency: number;
  trapCopies: number;
  reportRate: number;
  hamMistakeRate: number;
  lookupTimeoutMs: number;
  baseline: boolean;
  keep: boolean;
  write: boolean;
  keyRole: KeyRole;
  out: string;
  gatewayEnv: Record<string, string>;
}

class UsageError extends Error {}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    corpus: join(ROOT, '..', 'shared', 'corpus'),
    gateways: DEFAULT_PLAN.gateways,
    copies: DEFAULT_PLAN.copies,
    seed: '1',
    limit: null,
    json: false,
    concurrency: 8,
    trapCopies: DEFAULT_PLAN.trapCopies,
    reportRate: DEFAULT_PLAN.reportRate,
    hamMistakeRate: DEFAULT_PLAN.hamMistakeRate,
    lookupTimeoutMs: 2000,
    baseline: true,
    keep: false,
    write: true,
    keyRole: 'split',
    out: 'eval',
    gatewayEnv: {},
  };
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    const number = (min: number, max = Infinity, integer = true): number => {
      const text = value();
      const n = Number(text);
      if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) throw new UsageError(`${flag}: expected ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${JSON.stringify(text)}`);
      return n;
    };
    switch (flag) {
      case '--gateways': args.gateways = number(1, 50); break;
      case '--copies': args.copies = number(2, 100); break;
      case '--seed': args.seed = value(); break;
      case '--limit': args.limit = number(1); break;
      case '--json': args.json = true; break;
      case '--concurrency': args.concurrency = number(1, 200); break;
      case '--trap-copies': args.trapCopies = number(0, 100); break;
      case '--report-rate': args.reportRate = number(0, 1, false); break;
      case '--ham-mistake-rate': args.hamMistakeRate = number(0, 1, false); break;
      case '--lookup-timeout-ms': args.lookupTimeoutMs = number(1, 60_000); break;
      case '--no-baseline': args.baseline = false; break;
      case '--keep': args.keep = true; break;
      case '--no-write': args.write = false; break;
      case '--key-role': {
        const role = value();
        if (role !== 'reporter' && role !== 'admin' && role !== 'split') throw new UsageError(`--key-role: reporter, admin or split, not ${JSON.stringify(role)}`);
        args.keyRole = role;
        break;
      }
      case '--gateway-env': {
        const pair = value();
        const match = /^(NIMBUS_[A-Z0-9_]+)=(.*)$/.exec(pair);
        if (!match) throw new UsageError(`--gateway-env: NIMBUS_NAME=VALUE, not ${JSON.stringify(pair)}`);
        args.gatewayEnv[match[1]!] = match[2]!;
        break;
      }
      case '--out': {
        const name = value();
        if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) throw new UsageError('--out: a name of lower-case letters, digits and dashes');
        args.out = name;
        break;
      }
      default:
        if (flag.startsWith('--')) throw new UsageError(`unknown option ${flag}`);
        positional.push(arg);
    }
  }
  if (positional.length > 1) throw new UsageError(`one corpus directory at most, got ${positional.join(' ')}`);
  if (positional[0]) args.corpus = resolve(positional[0]);
  if (args.trapCopies >= args.copies) throw new UsageError('--trap-copies must leave at least one copy for users');
  return args;
}

/** The reject score the gateways run with: the experiment's own, else the product's default. */
function rejectScoreOf(args: Args): number {
  return Number(args.gatewayEnv.NIMBUS_REJECT_SCORE ?? VARIABLES.NIMBUS_REJECT_SCORE.default);
}

const log = (text: string): void => {
  process.stderr.write(`${text}\n`);
};

interface VariantSummary {
  copies: number;
  images: Record<string, number>;
  image_errors: number;
  greetings_replaced: number;
  greetings_inserted: number;
  footers_shuffled: number;
  text_parts: number;
  links_tagged: number;
  attachments_renamed: number;
}

/** Writes every copy after the first to `dir` once; both networks then send the same bytes. */
async function prepareVariants(plan: Plan, dir: string, seed: string): Promise<{ messageOf: (event: PlanEvent) => Buffer; summary: VariantSummary }> {
  mkdirSync(dir, { recursive: true });
  const summary: VariantSummary = { copies: 0, images: {}, image_errors: 0, greetings_replaced: 0, greetings_inserted: 0, footers_shuffled: 0, text_parts: 0, links_tagged: 0, attachments_renamed: 0 };
  const jobs = plan.events.filter((event): event is Extract<PlanEvent, { kind: 'spam' }> => event.kind === 'spam' && event.copy > 0);
  const progress = new Progress('variants', jobs.length);
  const add = (report: VariantReport): void => {
    summary.copies++;
    for (const image of report.images) {
      summary.images[image.op] = (summary.images[image.op] ?? 0) + 1;
      if (image.error) summary.image_errors++;
    }
    summary.greetings_replaced += report.greeting.replaced;
    summary.greetings_inserted += report.greeting.inserted;
    summary.footers_shuffled += report.footer.shuffled;
    summary.text_parts += report.textParts;
    summary.links_tagged += report.tokens.links;
    summary.attachments_renamed += report.attachments.length;
  };
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const event = jobs[next++]!;
      const campaign = plan.campaigns[event.campaign]!;
      const variant = await makeVariant(campaign.message.raw, { seed, file: campaign.message.file, copy: event.copy, recipient: event.recipient });
      writeFileSync(join(dir, `${event.campaign}-${event.copy}.eml`), variant.bytes);
      add(variant.report);
      progress.update(++done);
    }
  };
  await Promise.all([worker(), worker()]);
  progress.done(`${summary.copies} copies`);
  const messageOf = (event: PlanEvent): Buffer => {
    if (event.kind === 'ham') return event.message.raw;
    if (event.copy === 0) return plan.campaigns[event.campaign]!.message.raw;
    return readFileSync(join(dir, `${event.campaign}-${event.copy}.eml`));
  };
  return { messageOf, summary };
}

async function runNetwork(plan: Plan, participation: Participation, workDir: string, args: Args, cliPath: string, messageOf: (event: PlanEvent) => Buffer): Promise<{ figures: RunFigures; seconds: number }> {
  mkdirSync(workDir, { recursive: true });
  const sink = await startSink(workDir);
  log(`${participation}: starting ${participation === 'standard' ? 'the reputation service and ' : ''}${plan.gateways.length} gateways`);
  const network = await startNetwork({ root: ROOT, cli: cliPath, keyRole: args.keyRole, gatewayEnv: args.gatewayEnv, workDir, gateways: plan.gateways, participation, sinkPort: sink.port, lookupTimeoutMs: args.lookupTimeoutMs });
  const started = Date.now();
  try {
    const progress = new Progress(`replay (${participation})`, plan.events.length);
    let spamAfterFirst = 0;
    let caught = 0;
    let fps = 0;
    const { outcomes, stats } = await replay(plan, network, sink, {
      concurrency: args.concurrency,
      messageOf,
      onProgress(done, _total, outcome) {
        if (outcome.kind === 'spam' && !outcome.trap && (outcome.copy ?? 0) >= 1 && outcome.how !== 'error') {
          spamAfterFirst++;
          if (outcome.flagged) caught++;
        }
        if (outcome.kind === 'ham' && outcome.flagged) fps++;
        progress.update(done, `caught ${spamAfterFirst ? ((100 * caught) / spamAfterFirst).toFixed(1) : '0'}% FP ${fps}`);
      },
    });
    const seconds = Math.round((Date.now() - started) / 1000);
    progress.done(`${(plan.events.length / Math.max(seconds, 1)).toFixed(1)} messages/s`);
    // Kept with the work directory (--keep) for looking into single copies.
    writeFileSync(join(workDir, 'outcomes.jsonl'), outcomes.map((o) => {
      const event = plan.events[o.seq]!;
      return JSON.stringify({ ...o, file: event.kind === 'ham' ? event.message.file : plan.campaigns[event.campaign]!.message.file, ip: event.ip });
    }).join('\n'));
    const figures = computeFigures(plan, outcomes, stats, participation, rejectScoreOf(args));
    writeFileSync(join(workDir, 'figures.json'), JSON.stringify(figures, null, 2));
    return { figures, seconds };
  } finally {
    await network.stop();
    await sink.close();
  }
}

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`eval: ${error.message}\nusage: npm run eval [-- CORPUS_DIR] [--gateways K] [--copies N] [--seed S] [--limit L] [--json]\n`);
      return EX_USAGE;
    }
    throw error;
  }
  const loadAtStart = loadavg().map((x) => Math.round(x * 100) / 100);
  const began = Date.now();
  const entries = listCorpus(args.corpus);
  const loading = new Progress('corpus', entries.length);
  const messages = entries.map((entry, i) => {
    loading.update(i + 1);
    return readCorpusMessage(entry);
  });
  loading.done(`${messages.length} messages`);
  const spam = messages.filter((m) => m.class === 'spam');
  const ham = messages.filter((m) => m.class === 'ham');
  const plan = buildPlan(spam, ham, {
    seed: args.seed,
    gateways: args.gateways,
    copies: args.copies,
    limit: args.limit,
    trapCopies: args.trapCopies,
    reportRate: args.reportRate,
    hamMistakeRate: args.hamMistakeRate,
  });
  const fromReceived = [...plan.campaigns.map((c) => c.handoff.source)].filter((s) => s === 'received').length;
  log(`plan: ${plan.campaigns.length} campaigns × ${args.copies} copies, ${plan.ham.length} ham, ${plan.events.length} messages per network, ${args.gateways} gateways, seed ${args.seed}`);

  const workDir = mkdtempSync(join(tmpdir(), 'nimbus-eval-'));
  const seconds: Record<string, number> = {};
  try {
    const prepStarted = Date.now();
    const { messageOf, summary } = await prepareVariants(plan, join(workDir, 'variants'), args.seed);
    seconds.variants = Math.round((Date.now() - prepStarted) / 1000);
    log('building the product into .tmp/eval-dist');
    const cliPath = await buildProduct(ROOT);
    const participating = await runNetwork(plan, 'standard', join(workDir, 'standard'), args, cliPath, messageOf);
    seconds.participating = participating.seconds;
    let baseline: RunFigures | null = null;
    if (args.baseline) {
      const off = await runNetwork(plan, 'off', join(workDir, 'off'), args, cliPath, messageOf);
      baseline = off.figures;
      seconds.baseline = off.seconds;
    }
    seconds.total = Math.round((Date.now() - began) / 1000);

    const p = participating.figures;
    const summaryFigures = {
      detection_rate: p.detection_rate,
      baseline_detection_rate: baseline?.detection_rate ?? null,
      false_positives: p.false_positives,
      ham_count: p.ham_count,
      spam_copies: p.spam_copies,
      median_copies_to_protection: p.median_copies_to_protection,
    };
    // --keep and --no-write change where files go, not a figure: left out of the recorded command.
    const command = ['npm run eval --', ...process.argv.slice(2).filter((arg) => arg !== '--keep' && arg !== '--no-write')].join(' ').replace(/ --$/, '');
    const results: EvalResults = {
      command: command === 'npm run eval --' ? 'npm run eval' : command,
      date: new Date().toISOString(),
      corpus: args.corpus,
      machine: { cpus: cpus().length, loadavg_at_start: loadAtStart, node: process.version },
      options: { gateways: args.gateways, copies: args.copies, seed: args.seed, limit: args.limit, concurrency: args.concurrency, trap_copies: args.trapCopies, report_rate: args.reportRate, ham_mistake_rate: args.hamMistakeRate, lookup_timeout_ms: args.lookupTimeoutMs, key_role: args.keyRole, gateway_env: args.gatewayEnv },
      plan: { campaigns: plan.campaigns.length, corpus_spam: spam.length, ham: plan.ham.length, corpus_ham: ham.length, events: plan.events.length, ip_from_received: fromReceived, ip_derived: plan.campaigns.length - fromReceived },
      variants: { ...summary },
      seconds,
      participating: p,
      baseline,
      targets: {
        after_two: p.detection_rate_after_two >= 95,
        zero_fp: p.false_positives === 0,
        beats_baseline: baseline === null ? null : p.detection_rate > baseline.detection_rate,
        improvement_points: baseline === null ? null : Math.round((p.detection_rate - baseline.detection_rate) * 100) / 100,
      },
      summary: summaryFigures as unknown as Record<string, number>,
    };

    if (args.write) {
      mkdirSync(RESULTS, { recursive: true });
      writeFileSync(join(RESULTS, `${args.out}.json`), `${JSON.stringify(results, null, 2)}\n`);
      const svg = resultsSvg(results);
      writeFileSync(join(RESULTS, `${args.out}-detection.png`), await svgToPng(svg));
      // Only the default output is the BENCHMARKS row; other names are side experiments.
      if (args.out === 'eval') writeBenchmarksBlock(join(ROOT, 'BENCHMARKS.md'), evalMarkdown(results));
      log(`wrote bench/results/${args.out}.json, bench/results/${args.out}-detection.png${args.out === 'eval' ? ' and the Evaluation block of BENCHMARKS.md' : ''}`);
    }
    log(`detection after the first copy: ${p.detection_rate}% participating${baseline ? `, ${baseline.detection_rate}% off` : ''}; after the first two: ${p.detection_rate_after_two}%${baseline ? ` / ${baseline.detection_rate_after_two}%` : ''}; false positives ${p.false_positives}/${p.ham_count}; median copies to protection ${p.median_copies_to_protection}; total ${formatSeconds(seconds.total)}`);
    if (args.json) process.stdout.write(`${JSON.stringify(summaryFigures)}\n`);
    return 0;
  } finally {
    if (args.keep) log(`work directory kept: ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
