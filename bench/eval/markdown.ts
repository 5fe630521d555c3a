/**
 * The BENCHMARKS.md block of the evaluation, written between `<!-- eval figures -->` and
 * `<!-- /eval figures -->` so that hand-written analysis around it survives a re-run.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { RunFigures } from './figures.js';

export const BLOCK_START = '<!-- eval figures -->';
export const BLOCK_END = '<!-- /eval figures -->';

export interface EvalResults {
  readonly command: string;
  readonly date: string;
  readonly corpus: string;
  readonly machine: { readonly cpus: number; readonly loadavg_at_start: readonly number[]; readonly node: string };
  readonly options: Record<string, unknown>;
  readonly plan: { readonly campaigns: number; readonly corpus_spam: number; readonly ham: number; readonly corpus_ham: number; readonly events: number; readonly ip_from_received: number; readonly ip_derived: number };
  readonly variants: Record<string, unknown>;
  readonly seconds: Record<string, number>;
  readonly participating: RunFigures;
  readonly baseline: RunFigures | null;
  readonly targets: Record<string, unknown>;
  readonly summary: Record<string, number>;
}

const yes = (ok: boolean): string => (ok ? '**met**' : '**missed**');

export function evalMarkdown(results: EvalResults): string {
  const p = results.participating;
  const b = results.baseline;
  const rows: string[] = [];
  const row = (name: string, part: string | number, base: string | number | null, target = ''): void => {
    rows.push(`| ${name} | ${part} | ${base ?? '–'} | ${target} |`);
  };
  const t = results.targets as { after_two: boolean; zero_fp: boolean; beats_baseline: boolean | null; improvement_points: number | null };
  row('spam copies counted (after the first, traps excluded)', p.spam_copies, b?.spam_copies ?? null);
  row('**detection rate, copies after the first**', `**${p.detection_rate}%**`, b ? `${b.detection_rate}%` : null, t.beats_baseline === null ? '' : `beats off: ${t.improvement_points! >= 0 ? '+' : ''}${t.improvement_points} points`);
  row('**detection rate, copies after the first two**', `**${p.detection_rate_after_two}%**`, b ? `${b.detection_rate_after_two}%` : null, `≥ 95%: ${yes(t.after_two)}`);
  for (let i = 0; i < p.by_copies_seen.length; i++) {
    const pc = p.by_copies_seen[i]!;
    const bc = b?.by_copies_seen[i];
    row(`detection with ${pc.copies_seen} cop${pc.copies_seen === 1 ? 'y' : 'ies'} seen`, `${pc.rate}% (${pc.caught}/${pc.copies})`, bc ? `${bc.rate}% (${bc.caught}/${bc.copies})` : null);
  }
  row('median copies to protection', p.median_copies_to_protection, b?.median_copies_to_protection ?? null);
  row('campaigns never protected (last copy missed)', `${p.campaigns_never_protected} of ${p.campaigns}`, b ? `${b.campaigns_never_protected} of ${b.campaigns}` : null);
  row('**false positives on ham**', `**${p.false_positives} of ${p.ham_count} (${p.false_positive_rate}%)**`, b ? `${b.false_positives} of ${b.ham_count} (${b.false_positive_rate}%)` : null, `0: ${yes(t.zero_fp)}`);
  const share = (x: { copies: number; reached: number; rate: number }): string => `${x.rate}% (${x.reached}/${x.copies})`;
  row(`caught text-only copies after two at the reject score (${p.reject_score})`, share(p.text_only_at_reject), b ? share(b.text_only_at_reject) : null);
  row(`all caught copies after two at the reject score`, share(p.at_reject), b ? share(b.at_reject) : null);
  row('highest ham score; ham at the reject score', `${p.max_ham_score ?? '–'}; ${p.ham_at_reject}`, b ? `${b.max_ham_score ?? '–'}; ${b.ham_at_reject}` : null);
  row('ham reported as spam by mistake; their resends flagged', `${p.mistaken_reports}; ${p.mistaken_resends_flagged}`, b ? `${b.mistaken_reports}; ${b.mistaken_resends_flagged}` : null);
  row('user reports of delivered spam (failed)', `${p.reports} (${p.report_failures})`, b ? `${b.reports} (${b.report_failures})` : null);
  row('send errors', p.errors, b?.errors ?? null);
  row('copies after two with an incomplete lookup', p.incomplete_lookups, b?.incomplete_lookups ?? null);
  row('replay time', `${results.seconds.participating ?? 0} s`, b ? `${results.seconds.baseline ?? 0} s` : null);

  const content = Object.entries(p.by_content).map(([name, v]) => `${name} ${v.rate}% (${v.copies})${b?.by_content[name] ? ` vs off ${b.by_content[name]!.rate}%` : ''}`).join('; ');
  const ip = Object.entries(p.by_ip_change).map(([name, v]) => `${name} ${v.rate}% (${v.copies})${b?.by_ip_change[name] ? ` vs off ${b.by_ip_change[name]!.rate}%` : ''}`).join('; ');
  const kinds = Object.entries(p.kinds)
    .sort((x, y) => y[1].caught_present + y[1].missed_present - (x[1].caught_present + x[1].missed_present))
    .map(([kind, v]) => `| ${kind} | ${v.caught_present} | ${v.caught_spam} | ${v.missed_present} | ${v.missed_spam} |`);
  const tests = Object.entries(p.tests).sort((x, y) => y[1] - x[1]).map(([name, n]) => `${name} ${n}`).join(', ');

  return [
    BLOCK_START,
    `Command: \`${results.command}\`, ${results.date}, ${results.machine.cpus} CPUs, load average at start ${results.machine.loadavg_at_start.join(' ')}, Node ${results.machine.node}.`,
    `Corpus \`${results.corpus}\`: ${results.plan.campaigns} campaigns (of ${results.plan.corpus_spam} spam) × ${String(results.options.copies)} copies over ${String(results.options.gateways)} gateways, ${results.plan.ham} ham (of ${results.plan.corpus_ham}), seed ${String(results.options.seed)}, gateway keys with role \`${String(results.options.key_role)}\`; sending IP from Received for ${results.plan.ip_from_received} messages, derived for ${results.plan.ip_derived}.`,
    '',
    '| figure | participating (`standard`) | baseline (`off`) | target |',
    '|---|---|---|---|',
    ...rows,
    '',
    `Detection after the first two copies, by content: ${content || '–'}. By sending IP of the copy: ${ip || '–'}.`,
    '',
    'Fingerprint kinds in the X-Nimbus-Report of copies after the first two (participating run): in how many copies the kind was',
    'present, and judged `spam`, among caught and among missed copies.',
    '',
    '| kind | caught: present | caught: spam | missed: present | missed: spam |',
    '|---|---|---|---|---|',
    ...kinds,
    '',
    `Tests that scored the caught copies: ${tests || '–'}.`,
    '',
    `False positives (participating): ${p.false_positives}, of which ${p.false_positives_from_campaign_ips} from a sending IP that also sent a campaign; tests that scored them: ${Object.entries(p.false_positive_tests).sort((x, y) => y[1] - x[1]).map(([n, c]) => `${n} ${c}`).join(', ') || '–'}.${b ? ` Baseline: ${b.false_positives}, ${b.false_positives_from_campaign_ips} from campaign IPs.` : ''}`,
    '',
    'Plot: `bench/results/eval-detection.png`; every figure: `bench/results/eval.json`.',
    '',
    '![detection against copies seen](bench/results/eval-detection.png)',
    BLOCK_END,
  ].join('\n');
}

/** Replaces the block (or, the first time, the `## Evaluation` section's placeholder) in BENCHMARKS.md. */
export function writeBenchmarksBlock(file: string, block: string): void {
  const current = readFileSync(file, 'utf8');
  const start = current.indexOf(BLOCK_START);
  const end = current.indexOf(BLOCK_END);
  if (start >= 0 && end > start) {
    writeFileSync(file, `${current.slice(0, start)}${block}${current.slice(end + BLOCK_END.length)}`);
    return;
  }
  const placeholder = current.indexOf('## Detection\n\n(npm run eval)\n');
  const section = `## Evaluation\n\nCommand: \`npm run eval [-- CORPUS_DIR] [--gateways K] [--copies N] [--seed S] [--limit L] [--json]\` (bench/eval.ts).\n\n${block}\n`;
  if (placeholder >= 0) {
    writeFileSync(file, `${current.slice(0, placeholder)}${section}${current.slice(placeholder + '## Detection\n\n(npm run eval)\n'.length)}`);
  } else {
    writeFileSync(file, `${current.trimEnd()}\n\n${section}`);
  }
}
