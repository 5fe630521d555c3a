/**
 * `npm run bench -- bayes [CORPUS_DIR] [--json]`
 *
 * The statistical classifier alone, in-process (src/bayes): the corpus in time order cut in half
 * as in the day-one eval (bench/eval/history.ts), the older half's tokens learnt into a fresh
 * store, the newer half classified. Figures: how many newer spam and ham fall in each band of
 * P(spam), and the CPU time of one classification (the counts' query and the combining; the
 * tokens come with the analysis) in µs per message. The day-one eval itself says what the points
 * catch with the rest of the score.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spamProbability } from '../src/bayes/classify.js';
import { BayesStore, type TokenChange } from '../src/bayes/store.js';
import { fingerprintMessage } from '../src/fingerprint/index.js';
import { listCorpus, readCorpusMessage } from './eval/corpus.js';
import { splitHistory } from './eval/history.js';

const here = dirname(fileURLToPath(import.meta.url));
const BANDS = [0, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99, 0.999] as const;

function bandOf(p: number): string {
  let at = 0;
  for (const [i, from] of BANDS.entries()) if (p >= from) at = i;
  const to = BANDS[at + 1];
  return to === undefined ? `≥ ${BANDS[at]}` : `[${BANDS[at]}, ${to})`;
}

export async function run(args: string[]): Promise<number> {
  const json = args.includes('--json');
  const corpus = resolve(args.find((a) => !a.startsWith('-')) ?? join(here, '..', '..', 'shared', 'corpus'));
  const { older, newer, cut } = splitHistory(listCorpus(corpus).map(readCorpusMessage), 0.5);
  const dir = mkdtempSync(join(os.tmpdir(), 'nimbus-bayes-'));
  const store = new BayesStore(join(dir, 'local-reputation.sqlite'));
  try {
    const changes: TokenChange[] = [];
    for (const m of older) changes.push({ label: m.class, tokens: (await fingerprintMessage(m.raw, { tokens: true })).tokens, delta: 1 });
    store.apply(changes);
    const bands: Record<string, { spam: number; ham: number }> = {};
    for (const from of BANDS) bands[bandOf(from)] = { spam: 0, ham: 0 };
    let cpuMicros = 0;
    let tokens = 0;
    for (const m of newer) {
      const found = (await fingerprintMessage(m.raw, { tokens: true })).tokens;
      tokens += found.length;
      const before = process.cpuUsage();
      const p = spamProbability(found, store.counts(found), store.totals());
      const used = process.cpuUsage(before);
      cpuMicros += used.user + used.system;
      bands[bandOf(p)]![m.class]++;
    }
    const result = {
      cut,
      learnt: store.totals(),
      newer: { spam: newer.filter((m) => m.class === 'spam').length, ham: newer.filter((m) => m.class === 'ham').length },
      bands,
      classify_cpu_us_per_message: Math.round(cpuMicros / newer.length),
      tokens_per_message: Math.round(tokens / newer.length),
      loadavg: os.loadavg().map((l) => Math.round(l * 100) / 100),
    };
    if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else {
      process.stdout.write(`learnt ${result.learnt.spam} spam, ${result.learnt.ham} ham (before ${cut}); newer ${result.newer.spam} spam, ${result.newer.ham} ham\n`);
      for (const [band, n] of Object.entries(bands)) process.stdout.write(`P ${band.padEnd(14)} spam ${String(n.spam).padStart(4)}  ham ${String(n.ham).padStart(4)}\n`);
      process.stdout.write(`classification: ${result.classify_cpu_us_per_message} µs CPU per message (${result.tokens_per_message} tokens), load average ${result.loadavg.join(', ')}\n`);
    }
    return 0;
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
