/**
 * The `## Protection` section of BENCHMARKS.md: one table per run, with an earlier run (before a
 * change) beside it when given. Rewritten whole on each run, from its heading to the next `## `.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { ScenarioFigures } from './figures.js';

export interface ProtectionResults {
  readonly command: string;
  readonly date: string;
  readonly machine: { readonly cpus: number; readonly cpu: string; readonly loadavg_at_start: readonly number[]; readonly node: string };
  readonly options: { readonly gateways: number; readonly campaigns: number; readonly duration_s: number; readonly interval_ms: number; readonly seed: string; readonly lookup_timeout_ms: number };
  readonly seconds: number;
  readonly figures: Record<string, Record<string, ScenarioFigures>>;
}

const HEADING = '## Protection';
/** Targets of issue 21. */
export const TARGET_P99_S = 1;

const SCENARIO_NAMES: Record<string, string> = {
  trap: 'spam trap hit (gateway admin key)',
  report: 'one `nimbus report --spam` (admin key)',
  voices: 'three `nimbus report --spam` (reporter keys)',
  proxy: 'admin report upstream, gateways behind a private service',
};

function cell(f: ScenarioFigures | undefined, durationS: number): string {
  if (!f || f.campaigns === 0) return '–';
  const p = (s: number | null): string => (s === null ? '–' : s >= durationS ? `> ${durationS}` : String(s));
  const overloaded = f.missed_overloaded ? `; ${f.missed_overloaded} more judged without the service (timeouts)` : '';
  return `${p(f.protection_p50_s)} / ${p(f.protection_p99_s)} s; missed ${f.missed_after_signal} of ${f.copies_after_signal} (${f.missed_later_than_1s} later than 1 s)${overloaded}`;
}

function met(f: ScenarioFigures | undefined): string {
  if (!f || f.campaigns === 0) return '–';
  const ok = f.protection_p99_s !== null && f.protection_p99_s <= TARGET_P99_S && f.censored === 0 && f.missed_later_than_1s === 0;
  return ok ? '**met**' : '**missed**';
}

export function protectionMarkdown(after: ProtectionResults, before: ProtectionResults | null): string {
  const o = after.options;
  const lines = [
    HEADING,
    '',
    `Command: \`${after.command}\` (bench/protection.ts). Machine: ${after.machine.cpus}-core ${after.machine.cpu}, shared with other work and loaded (load average ${after.machine.loadavg_at_start.join(', ')} at start), Node ${after.machine.node}. Date: ${after.date.slice(0, 10)}.`,
    '',
    `One \`nimbus reputation\` and ${o.gateways} gateways on loopback; per store and scenario a fresh network and ${o.campaigns} corpus campaigns. Every gateway first gets a copy (its cache then holds the service's \`unknown\`); after the signal each gateway gets a copy every ${o.interval_ms} ms for ${o.duration_s} s, identical and personalised in turn. Protection time: seconds from the signal to the first copy after a gateway's last missed one; \`> ${o.duration_s}\` when a gateway still missed the last copy. Cells: p50 / p99 of protection over (campaign, gateway) pairs; copies missed after the signal. Copies a gateway judged without the service's answer (its scan or lookup ran out of time on the loaded machine: \`NIMBUS_SCAN_TIMEOUT\`, \`NIMBUS_LOOKUP_TIMEOUT\`…) are counted apart and left out of protection times: they say nothing about what the network knew. Campaigns the service does not call spam even when asked afresh after the signal are left out (a scoring matter, not one of speed).${before ? ` Before: \`${before.command}\` on ${before.date.slice(0, 10)} (${before.options.campaigns} campaign${before.options.campaigns === 1 ? '' : 's'} per scenario, ${before.options.duration_s} s).` : ''}`,
    '',
    `| store | signal | ${before ? 'before | ' : ''}now | target: p99 ≤ ${TARGET_P99_S} s, 0 missed later than 1 s |`,
    `|---|---|${before ? '---|' : ''}---|---|`,
  ];
  for (const [store, byScenario] of Object.entries(after.figures)) {
    for (const [scenario, f] of Object.entries(byScenario)) {
      const b = before?.figures[store]?.[scenario];
      lines.push(`| ${store} | ${SCENARIO_NAMES[scenario] ?? scenario} | ${before ? `${cell(b, before.options.duration_s)} | ` : ''}${cell(f, o.duration_s)} | ${met(f)} |`);
    }
  }
  lines.push('', 'Plots: bench/results/protection-sqlite.png, bench/results/protection-redis.png.', '');
  return lines.join('\n');
}

/** Replaces the section that starts with `heading` (the first line of `section`), or appends it. */
export function writeProtectionSection(file: string, section: string): void {
  const heading = section.split('\n', 1)[0]!;
  const current = readFileSync(file, 'utf8');
  const start = current.indexOf(`${heading}\n`);
  if (start < 0) {
    writeFileSync(file, `${current.trimEnd()}\n\n${section}`);
    return;
  }
  // Hand-written notes under `### NAME notes` (as the relay's) survive a re-run.
  const ends = [current.indexOf('\n## ', start + heading.length), current.indexOf(`\n### ${heading.slice(3)} notes`, start)].filter((at) => at >= 0);
  const next = ends.length === 0 ? -1 : Math.min(...ends);
  // One blank line between the table and what follows it, whatever the section ends with.
  writeFileSync(file, `${current.slice(0, start)}${section.trimEnd()}\n${next < 0 ? '' : `\n${current.slice(next + 1)}`}`);
}
