/**
 * `npm run bench -- protection [--store sqlite,redis] [--scenario trap,report,voices,proxy]
 * [--gateways K] [--campaigns N] [--duration S] [--interval-ms MS] [--json] [--out NAME]
 * [--before FILE] [--cli PATH] [--no-write]`: seconds from the first signal about a campaign to every gateway
 * catching its copies, in real time (issue 21).
 *
 * For each store and scenario a fresh network (bench/protection/network.ts) runs N campaigns
 * made from corpus spam (bench/protection/campaign.ts). Scenarios: `trap` (a copy reaches a spam
 * trap of gateway 1, whose admin key makes it trusted), `report` (one `nimbus report --spam` with
 * the service's admin key), `voices` (three `nimbus report --spam` at once, three reporter keys),
 * `proxy` (the gateways talk to a private service whose upstream is the measured one; an admin
 * reports at the upstream).
 *
 * Writes bench/results/NAME.json (default `protection`), bench/results/NAME-STORE.png (share of
 * copies caught against seconds since the signal) and the `## Protection` section of
 * BENCHMARKS.md (with --before FILE: an earlier run's JSON beside this one). With --json, prints
 * protection_p50_s, protection_p99_s and missed_after_signal per store and scenario.
 * `--replot` redraws the plots of a saved run. `--stream-cost [--stream-gateways N]` measures what the convictions stream costs instead
 * (bench/protection/stream-cost.ts).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listCorpus, readCorpusMessage, type CorpusMessage } from './eval/corpus.js';
import { buildProduct } from './eval/network.js';
import { gatewayIdentities, spread, timeOrder } from './eval/plan.js';
import { detectionSvg, svgToPng, type Series } from './eval/plot.js';
import { startSink } from './eval/sink.js';
import { personalisedCopies, runCampaign, SCENARIOS, type CampaignResult, type Scenario } from './protection/campaign.js';
import { scenarioFigures, type ScenarioFigures } from './protection/figures.js';
import { protectionMarkdown, writeProtectionSection, type ProtectionResults } from './protection/markdown.js';
import { startProtectionNetwork, type Store } from './protection/network.js';
import { runStreamCost } from './protection/stream-cost.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = join(here, '..');
const RESULTS = join(here, 'results');
const EX_USAGE = 64;
/**
 * Personalised copies made per campaign, then sent in turn: each made copy differs, and a repeat
 * comes with its own recipient. Making one copy per slot (900 a minute) would take longer than
 * the campaign itself on a small machine.
 */
const PERSONALISED_POOL = 60;
/** Campaigns are taken from spam spread over the corpus, a few spare for those caught before any signal. */
const SPARE_CAMPAIGNS = 4;
const COLOURS: Record<Scenario, string> = { trap: '#1f77b4', report: '#2ca02c', voices: '#ff7f0e', proxy: '#9467bd' };

interface Args {
  corpus: string;
  stores: Store[];
  scenarios: Scenario[];
  gateways: number;
  campaigns: number;
  durationS: number;
  intervalMs: number;
  lookupTimeoutMs: number;
  seed: string;
  json: boolean;
  out: string;
  before: string | null;
  write: boolean;
  keep: boolean;
  /** A CLI built elsewhere (e.g. the code before a change), instead of building the tree's. */
  cli: string | null;
  streamCost: boolean;
  streamGateways: number;
  /** Redraw the plots of bench/results/NAME.json (and --before) without running anything. */
  replot: boolean;
}

class UsageError extends Error {}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    corpus: join(ROOT, '..', 'shared', 'corpus'),
    stores: ['sqlite', 'redis'],
    scenarios: [...SCENARIOS],
    gateways: 3,
    campaigns: 3,
    durationS: 60,
    intervalMs: 100,
    lookupTimeoutMs: 2000,
    seed: '1',
    json: false,
    out: 'protection',
    before: null,
    write: true,
    keep: false,
    cli: null,
    streamCost: false,
    streamGateways: 50,
    replot: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    const number = (min: number, max: number, integer = true): number => {
      const text = value();
      const n = Number(text);
      if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) throw new UsageError(`${flag}: expected ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${JSON.stringify(text)}`);
      return n;
    };
    const list = <T extends string>(allowed: readonly T[]): T[] => {
      const items = value().split(',').map((s) => s.trim()).filter((s) => s !== '');
      const bad = items.find((s) => !allowed.includes(s as T));
      if (bad !== undefined || items.length === 0) throw new UsageError(`${flag}: a comma-separated list of ${allowed.join(', ')}${bad === undefined ? '' : `, not ${JSON.stringify(bad)}`}`);
      return items as T[];
    };
    switch (flag) {
      case '--store': args.stores = list<Store>(['sqlite', 'redis']); break;
      case '--scenario': args.scenarios = list<Scenario>(SCENARIOS); break;
      case '--gateways': args.gateways = number(1, 20); break;
      case '--campaigns': args.campaigns = number(1, 100); break;
      case '--duration': args.durationS = number(1, 600, false); break;
      case '--interval-ms': args.intervalMs = number(10, 10_000); break;
      case '--lookup-timeout-ms': args.lookupTimeoutMs = number(1, 60_000); break;
      case '--seed': args.seed = value(); break;
      case '--json': args.json = true; break;
      case '--out': args.out = value(); break;
      case '--before': args.before = value(); break;
      case '--no-write': args.write = false; break;
      case '--keep': args.keep = true; break;
      case '--corpus': args.corpus = value(); break;
      case '--cli': args.cli = value(); break;
      case '--stream-cost': args.streamCost = true; break;
      case '--replot': args.replot = true; break;
      case '--stream-gateways': args.streamGateways = number(1, 1000); break;
      default: throw new UsageError(`unknown option ${arg}`);
    }
  }
  return args;
}

function log(line: string): void {
  process.stderr.write(`protection: ${line}\n`);
}

async function runScenario(args: Args, cli: string, store: Store, scenario: Scenario, messages: readonly CorpusMessage[], workRoot: string): Promise<CampaignResult[]> {
  const workDir = join(workRoot, `${store}-${scenario}`);
  mkdirSync(workDir, { recursive: true });
  const sink = await startSink(workDir);
  const identities = gatewayIdentities(args.gateways, args.seed);
  const network = await startProtectionNetwork({
    root: ROOT,
    cli,
    workDir,
    store,
    proxy: scenario === 'proxy',
    gateways: identities,
    sinkPort: sink.port,
    lookupTimeoutMs: args.lookupTimeoutMs,
    reporterKeys: 3,
  }).catch(async (error: unknown) => {
    // The sink's server would keep the process alive after the error is reported.
    await sink.close();
    throw error;
  });
  const results: CampaignResult[] = [];
  try {
    const perCampaign = Math.min(PERSONALISED_POOL, Math.ceil(((args.durationS * 1000) / args.intervalMs) * args.gateways / 2) + 1);
    for (const message of messages) {
      if (results.filter((r) => r.skipped === null).length >= args.campaigns) break;
      const personalised = await personalisedCopies(message, perCampaign, args.seed, identities[0]!.domain);
      const result = await runCampaign({ network, sink, identities, scenario, durationS: args.durationS, intervalMs: args.intervalMs, seed: args.seed, workDir }, results.length, message, personalised);
      results.push(result);
      const missed = result.copies.filter((c) => !c.caught && c.error === null).length;
      log(`${store} ${scenario} ${message.file}: ${result.skipped ?? `signal ${result.signalSeconds.toFixed(2)} s, ${missed}/${result.copies.length} copies missed`}`);
    }
  } finally {
    await network.stop();
    await sink.close();
  }
  return results;
}

/** One plot per store: share of copies caught per second since the signal, per scenario; an earlier run dashed. */
async function writePlots(results: ProtectionResults, before: ProtectionResults | null, out: string): Promise<void> {
  const o = results.options;
  for (const [store, byScenario] of Object.entries(results.figures)) {
    const series: Series[] = Object.entries(byScenario).map(([scenario, f]) => ({ label: scenario, colour: COLOURS[scenario as Scenario], points: f.caught_by_second }));
    for (const [scenario, f] of Object.entries(before?.figures[store] ?? {})) {
      series.push({ label: `${scenario} before`, colour: COLOURS[scenario as Scenario], dashed: true, legend: false, points: f.caught_by_second });
    }
    const longest = Math.max(o.duration_s, before?.options.duration_s ?? 0);
    const svg = detectionSvg(series, {
      title: `Copies caught against seconds since the signal (${store})`,
      subtitle: `${o.campaigns} campaigns per scenario, ${o.gateways} gateways, a copy to each every ${o.interval_ms} ms; ${results.date.slice(0, 10)}, seed ${o.seed}${before ? ' | dashed: before the convictions stream (60 s cache of every answer)' : ''}`,
      xLabel: 'seconds since the signal (trap hit or report accepted)',
      yLabel: 'copies caught',
      xStep: longest > 20 ? 5 : 1,
      legendWidth: 170,
    });
    writeFileSync(join(RESULTS, `${out}-${store}.png`), await svgToPng(svg));
  }
}

export async function run(argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`bench protection: ${error.message}\n`);
      return EX_USAGE;
    }
    throw error;
  }
  if (args.replot) {
    const saved = JSON.parse(readFileSync(join(RESULTS, `${args.out}.json`), 'utf8')) as ProtectionResults;
    await writePlots(saved, args.before ? (JSON.parse(readFileSync(args.before, 'utf8')) as ProtectionResults) : null, args.out);
    return 0;
  }
  const cli = args.cli ?? (await buildProduct(ROOT));
  if (args.streamCost) return runStreamCost({ root: ROOT, cli, corpus: args.corpus, gateways: args.streamGateways, json: args.json, write: args.write, before: args.before, out: args.out === 'protection' ? 'protection-stream-cost' : args.out });
  const spam = timeOrder(listCorpus(args.corpus).filter((entry) => entry.class === 'spam').map(readCorpusMessage));
  const pool = spread(spam, (args.campaigns + SPARE_CAMPAIGNS) * args.scenarios.length);
  const workRoot = mkdtempSync(join(tmpdir(), 'nimbus-protection-'));
  const started = Date.now();
  const loadAtStart = loadavg().map((n) => Number(n.toFixed(2)));
  const figures: Record<string, Record<string, ScenarioFigures>> = {};
  const raw: Record<string, Record<string, CampaignResult[]>> = {};
  /** Per campaign what explains the figures; the copies themselves stay out (megabytes a run). */
  const compact = (): Record<string, Record<string, unknown[]>> =>
    Object.fromEntries(Object.entries(raw).map(([store, by]) => [store, Object.fromEntries(Object.entries(by).map(([scenario, results]) => [scenario, results.map((r) => ({
      file: r.file,
      skipped: r.skipped,
      signalSeconds: r.signalSeconds,
      copies: r.copies.length,
      missed: r.copies.filter((c) => !c.caught && c.error === null).length,
    }))]))]));
  const summaryOf = (): ProtectionResults => ({
    command: `npm run bench -- protection ${argv.join(' ')}`.trim(),
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', loadavg_at_start: loadAtStart, node: process.version },
    options: { gateways: args.gateways, campaigns: args.campaigns, duration_s: args.durationS, interval_ms: args.intervalMs, seed: args.seed, lookup_timeout_ms: args.lookupTimeoutMs },
    seconds: Math.round((Date.now() - started) / 1000),
    figures,
  });
  try {
    for (const store of args.stores) {
      figures[store] = {};
      raw[store] = {};
      for (const [i, scenario] of args.scenarios.entries()) {
        // Each scenario its own campaigns: what one convicted must not be known to the next.
        const messages = pool.filter((_, j) => j % args.scenarios.length === i);
        const results = await runScenario(args, cli, store, scenario, messages, workRoot);
        raw[store]![scenario] = results;
        figures[store]![scenario] = scenarioFigures(results, args.durationS, args.gateways, args.durationS > 10 ? 1 : 0.25);
        // Written after every scenario: a run that fails later keeps what it measured.
        mkdirSync(RESULTS, { recursive: true });
        writeFileSync(join(RESULTS, `${args.out}.json`), `${JSON.stringify({ ...summaryOf(), campaigns: compact() }, null, 1)}\n`);
      }
    }
  } finally {
    if (!args.keep) rmSync(workRoot, { recursive: true, force: true });
    else log(`work directory kept: ${workRoot}`);
  }
  const results = summaryOf();
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, `${args.out}.json`), `${JSON.stringify({ ...results, campaigns: compact() }, null, 1)}\n`);
  const before = args.before ? (JSON.parse(readFileSync(args.before, 'utf8')) as ProtectionResults) : null;
  await writePlots(results, before, args.out);
  if (args.write) {
    writeProtectionSection(join(ROOT, 'BENCHMARKS.md'), protectionMarkdown(results, before));
  }
  if (args.json) {
    const summary: Record<string, Record<string, unknown>> = {};
    for (const [store, byScenario] of Object.entries(figures)) {
      summary[store] = {};
      for (const [scenario, f] of Object.entries(byScenario)) {
        summary[store]![scenario] = { protection_p50_s: f.protection_p50_s, protection_p99_s: f.protection_p99_s, missed_after_signal: f.missed_after_signal, missed_later_than_1s: f.missed_later_than_1s };
      }
    }
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  }
  return 0;
}
