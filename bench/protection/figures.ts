/**
 * Figures of the protection bench. A gateway is protected from the first copy after its last
 * missed one: every copy it got from then on was caught. Its protection time is that copy's
 * seconds since the signal; a gateway that missed the run's last copy was not protected within
 * the run and counts as the run's duration (`censored`). Percentiles are nearest-rank over every
 * (campaign, gateway) pair. Copies the gateway judged without the service's answer (its scan or
 * lookup ran out of time on the loaded machine) are counted apart (`missed_overloaded`) and left
 * out of the protection time: they say nothing about what the network knew.
 */
import type { CampaignResult } from './campaign.js';

export interface ScenarioFigures {
  readonly campaigns: number;
  readonly skipped: readonly { file: string; why: string }[];
  /** Per (campaign, gateway): seconds from the signal to protection (duration when censored). */
  readonly protection_s: readonly number[];
  readonly protection_p50_s: number | null;
  readonly protection_p99_s: number | null;
  /** Pairs not protected by the end of the run. */
  readonly censored: number;
  /** Per (campaign, gateway): seconds to the first caught copy (null: none caught). */
  readonly first_caught_s: readonly (number | null)[];
  readonly copies_after_signal: number;
  readonly missed_after_signal: number;
  /** Missed copies sent more than 1 s after the signal (the target is 0). */
  readonly missed_later_than_1s: number;
  /** Missed copies judged without the service's answer (scan or lookup timed out): not in the two counts above. */
  readonly missed_overloaded: number;
  readonly errors: number;
  /** Seconds the signal took (trap transaction; report command to the service's answer), median. */
  readonly signal_p50_s: number | null;
  /** [seconds since signal (bin start), % caught] */
  readonly caught_by_second: readonly (readonly [number, number])[];
}

export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const round = (n: number | null, digits = 2): number | null => (n === null ? null : Number(n.toFixed(digits)));

export function scenarioFigures(results: readonly CampaignResult[], durationS: number, gateways: number, binS: number): ScenarioFigures {
  const measured = results.filter((r) => r.skipped === null);
  const protection: number[] = [];
  const firstCaught: (number | null)[] = [];
  let censored = 0;
  for (const result of measured) {
    for (let g = 0; g < gateways; g++) {
      const mine = result.copies.filter((c) => c.gateway === g && c.error === null && !c.overloaded).sort((a, b) => a.at - b.at);
      const lastMiss = mine.map((c) => c.caught).lastIndexOf(false);
      if (lastMiss === mine.length - 1) {
        censored++;
        protection.push(durationS);
      } else protection.push(lastMiss < 0 ? 0 : mine[lastMiss + 1]!.at);
      firstCaught.push(mine.find((c) => c.caught)?.at ?? null);
    }
  }
  const copies = measured.flatMap((r) => r.copies);
  const counted = copies.filter((c) => c.error === null && !c.overloaded);
  const bins = new Map<number, { caught: number; all: number }>();
  for (const copy of counted) {
    const bin = Math.floor(copy.at / binS) * binS;
    const entry = bins.get(bin) ?? { caught: 0, all: 0 };
    entry.all++;
    if (copy.caught) entry.caught++;
    bins.set(bin, entry);
  }
  return {
    campaigns: measured.length,
    skipped: results.filter((r) => r.skipped !== null).map((r) => ({ file: r.file, why: r.skipped! })),
    protection_s: protection.map((s) => round(s)!),
    protection_p50_s: round(percentile(protection, 50)),
    protection_p99_s: round(percentile(protection, 99)),
    censored,
    first_caught_s: firstCaught.map((s) => round(s)),
    copies_after_signal: counted.length,
    missed_after_signal: counted.filter((c) => !c.caught).length,
    missed_later_than_1s: counted.filter((c) => !c.caught && c.at > 1).length,
    missed_overloaded: copies.filter((c) => c.error === null && c.overloaded).length,
    errors: copies.filter((c) => c.error !== null).length,
    signal_p50_s: round(percentile(measured.map((r) => r.signalSeconds), 50)),
    caught_by_second: [...bins.entries()].sort((a, b) => a[0] - b[0]).map(([bin, { caught, all }]) => [round(bin)!, round((100 * caught) / all, 1)!] as const),
  };
}
