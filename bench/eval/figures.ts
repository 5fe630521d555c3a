/**
 * From the outcomes of one replay to the figures of issue 8, and the analysis behind them.
 *
 * Definitions (also in BENCHMARKS.md):
 * - a spam copy is *caught* when it was rejected, tagged spam (X-Nimbus-Verdict: spam) or not
 *   delivered at all (quarantine, discard); copies sent to spam traps are not counted, and
 *   neither are copies that failed to send (counted apart as errors);
 * - detection rate = caught / counted copies after the first of each campaign;
 *   "by copies seen": the same for the copies with index j, i.e. j copies already sent;
 * - copies to protection of a campaign = the number of copies sent before the first copy from
 *   which every later copy was caught (the last copy missed: never protected, counted as N);
 * - a false positive is a ham delivery tagged spam, rejected or withheld; resends of ham that was
 *   reported by mistake count as ham deliveries.
 */
import type { Plan } from './plan.js';
import type { Outcome, ReplayStats } from './replay.js';

export interface RunFigures {
  readonly participation: string;
  readonly detection_rate: number;
  readonly detection_rate_after_two: number;
  readonly spam_copies: number;
  readonly spam_copies_after_two: number;
  readonly by_copies_seen: readonly { copies_seen: number; copies: number; caught: number; rate: number }[];
  readonly median_copies_to_protection: number;
  readonly campaigns: number;
  readonly campaigns_never_protected: number;
  readonly false_positives: number;
  readonly ham_count: number;
  readonly false_positive_rate: number;
  readonly mistaken_reports: number;
  readonly mistaken_resends_flagged: number;
  readonly errors: number;
  readonly error_samples: readonly string[];
  readonly trap_copies: number;
  readonly reports: number;
  readonly report_failures: number;
  readonly report_failure_samples: readonly string[];
  /** Copies after the first two whose remote lookup did not complete (NIMBUS_LOOKUP_* in tests=). */
  readonly incomplete_lookups: number;
  /** Detection after the first two, split by what the copy carried. */
  readonly by_content: Readonly<Record<string, { copies: number; caught: number; rate: number }>>;
  readonly by_ip_change: Readonly<Record<string, { copies: number; caught: number; rate: number }>>;
  /**
   * Per fingerprint kind, over copies after the first two: how often the kind was in the
   * message's report, and how often it was judged spam, among caught and among missed copies.
   */
  readonly kinds: Readonly<Record<string, { caught_present: number; caught_spam: number; missed_present: number; missed_spam: number }>>;
  /** Which tests scored the caught copies (after the first two). */
  readonly tests: Readonly<Record<string, number>>;
  /** Tests that scored the false positives, and how many came from an IP that also sent a campaign (a list server, a forwarder). */
  readonly false_positive_tests: Readonly<Record<string, number>>;
  readonly false_positives_from_campaign_ips: number;
  readonly false_positive_samples: readonly { file: string; gateway: number; score: number | null; tests: readonly string[]; resend: boolean }[];
  /** The reject score the gateways ran with (NIMBUS_REJECT_SCORE). */
  readonly reject_score: number;
  /**
   * Caught copies after the first two whose score reached the reject score (or that were
   * rejected), in all and for text-only copies: what NIMBUS_SPAM_ACTION=reject would stop.
   */
  readonly at_reject: { copies: number; reached: number; rate: number };
  readonly text_only_at_reject: { copies: number; reached: number; rate: number };
  /** The highest score a ham delivery carried (null: none scored), and how many ham reached the reject score. */
  readonly max_ham_score: number | null;
  readonly ham_at_reject: number;
}

const pct = (caught: number, total: number): number => (total === 0 ? 0 : Math.round((10000 * caught) / total) / 100);

/** The middle value, or the mean of the two middle ones; 0 for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function bump(map: Record<string, { copies: number; caught: number; rate: number }>, key: string, caught: boolean): void {
  const entry = (map[key] ??= { copies: 0, caught: 0, rate: 0 });
  entry.copies++;
  if (caught) entry.caught++;
  entry.rate = pct(entry.caught, entry.copies);
}

export function computeFigures(plan: Plan, outcomes: readonly Outcome[], stats: ReplayStats, participation: string, rejectScore: number): RunFigures {
  const copies = plan.options.copies;
  const spam = outcomes.filter((o) => o.kind === 'spam');
  const counted = spam.filter((o) => !o.trap && o.how !== 'error' && (o.copy ?? 0) >= 1);
  const afterTwo = counted.filter((o) => (o.copy ?? 0) >= 2);
  const byCopies = Array.from({ length: Math.max(0, copies - 1) }, (_, i) => {
    const at = counted.filter((o) => o.copy === i + 1);
    const caught = at.filter((o) => o.flagged).length;
    return { copies_seen: i + 1, copies: at.length, caught, rate: pct(caught, at.length) };
  });

  const protection: number[] = [];
  let never = 0;
  const byCampaign = new Map<number, Outcome[]>();
  for (const o of spam) if (o.campaign !== null) byCampaign.set(o.campaign, [...(byCampaign.get(o.campaign) ?? []), o]);
  for (const list of byCampaign.values()) {
    const scored = list.filter((o) => !o.trap && o.how !== 'error').sort((a, b) => (a.copy ?? 0) - (b.copy ?? 0));
    if (scored.length === 0) continue;
    let from = copies;
    for (let i = scored.length - 1; i >= 0 && scored[i]!.flagged; i--) from = scored[i]!.copy ?? copies;
    if (from === copies) never++;
    protection.push(from);
  }

  const ham = outcomes.filter((o) => o.kind === 'ham' && o.how !== 'error');
  const fps = ham.filter((o) => o.flagged);
  const campaignOf = new Map(plan.campaigns.map((c) => [c.index, c]));
  const eventOf = new Map(plan.events.map((e) => [e.seq, e]));
  const byContent: Record<string, { copies: number; caught: number; rate: number }> = {};
  const byIp: Record<string, { copies: number; caught: number; rate: number }> = {};
  const kinds: Record<string, { caught_present: number; caught_spam: number; missed_present: number; missed_spam: number }> = {};
  const tests: Record<string, number> = {};
  let incomplete = 0;
  const reaches = (o: Outcome): boolean => o.how === 'rejected' || (o.score !== null && o.score >= rejectScore);
  const atReject = { copies: 0, reached: 0, rate: 0 };
  const textAtReject = { copies: 0, reached: 0, rate: 0 };
  for (const o of afterTwo) {
    const raw = campaignOf.get(o.campaign!)!.message.raw.toString('latin1');
    const image = /^content-type:\s*image\//im.test(raw);
    const attachment = /^content-disposition:\s*attachment/im.test(raw);
    bump(byContent, image ? 'with image' : attachment ? 'with attachment' : 'text only', o.flagged);
    if (o.flagged) {
      for (const share of image || attachment ? [atReject] : [atReject, textAtReject]) {
        share.copies++;
        if (reaches(o)) share.reached++;
        share.rate = pct(share.reached, share.copies);
      }
    }
    const event = eventOf.get(o.seq);
    if (event?.kind === 'spam') bump(byIp, event.ipChange, o.flagged);
    const present = new Set(o.entries.map((e) => e.kind));
    const spammy = new Set(o.entries.filter((e) => e.verdict === 'spam').map((e) => e.kind));
    for (const kind of present) {
      const entry = (kinds[kind] ??= { caught_present: 0, caught_spam: 0, missed_present: 0, missed_spam: 0 });
      if (o.flagged) {
        entry.caught_present++;
        if (spammy.has(kind)) entry.caught_spam++;
      } else {
        entry.missed_present++;
        if (spammy.has(kind)) entry.missed_spam++;
      }
    }
    if (o.tests.some((t) => t.startsWith('NIMBUS_LOOKUP_'))) incomplete++;
    if (o.flagged) for (const test of o.tests) tests[test] = (tests[test] ?? 0) + 1;
  }

  const hamScores = ham.map((o) => o.score).filter((score): score is number => score !== null);
  const errors = outcomes.filter((o) => o.how === 'error');
  const fpTests: Record<string, number> = {};
  for (const o of fps) for (const test of o.tests) fpTests[test] = (fpTests[test] ?? 0) + 1;
  const campaignIps = new Set(plan.events.filter((e) => e.kind === 'spam').map((e) => e.ip));
  const fpFromCampaignIps = fps.filter((o) => campaignIps.has(eventOf.get(o.seq)?.ip ?? '')).length;
  return {
    participation,
    detection_rate: pct(counted.filter((o) => o.flagged).length, counted.length),
    detection_rate_after_two: pct(afterTwo.filter((o) => o.flagged).length, afterTwo.length),
    spam_copies: counted.length,
    spam_copies_after_two: afterTwo.length,
    by_copies_seen: byCopies,
    median_copies_to_protection: median(protection),
    campaigns: protection.length,
    campaigns_never_protected: never,
    false_positives: fps.length,
    ham_count: ham.length,
    false_positive_rate: pct(fps.length, ham.length),
    mistaken_reports: ham.filter((o) => o.mistake && o.reported).length,
    mistaken_resends_flagged: ham.filter((o) => o.resend && o.flagged).length,
    errors: errors.length,
    error_samples: [...new Set(errors.map((o) => o.error ?? '?'))].slice(0, 5),
    trap_copies: spam.filter((o) => o.trap).length,
    reports: stats.reports,
    report_failures: stats.reportFailures,
    report_failure_samples: stats.reportOutput.slice(0, 3),
    incomplete_lookups: incomplete,
    by_content: byContent,
    by_ip_change: byIp,
    kinds,
    tests,
    false_positive_tests: fpTests,
    false_positives_from_campaign_ips: fpFromCampaignIps,
    false_positive_samples: fps.slice(0, 20).map((o) => {
      const event = eventOf.get(o.seq);
      return { file: event?.kind === 'ham' ? event.message.file : '?', gateway: o.gateway + 1, score: o.score, tests: o.tests, resend: o.resend };
    }),
    reject_score: rejectScore,
    at_reject: atReject,
    text_only_at_reject: textAtReject,
    max_ham_score: hamScores.length === 0 ? null : Math.max(...hamScores),
    ham_at_reject: ham.filter(reaches).length,
  };
}
