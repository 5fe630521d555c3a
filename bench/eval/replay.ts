/**
 * Replays a plan against a running network: each event is one SMTP transaction (XCLIENT with the
 * event's IP), a few in flight at once, with the copies of one campaign strictly in order (copy
 * j is sent only after copy j-1 was answered). Each copy is classified from what the sender and
 * the recipient saw: a 5xx reply, or the verdict headers the next hop received, or nothing
 * received at all (a trap, a quarantine, a discard).
 *
 * Labels enter as users' would: delivered spam that the plan marks as reported is handed, as the
 * message the user received, to `nimbus report --spam` of that gateway, in small batches (as a
 * reporting button feeding the admin's tooling would); ham marked as a mistake is reported at
 * once, and its resend waits for that report.
 */
import { readFileSync, rmSync } from 'node:fs';
import type { Network } from './network.js';
import type { Plan, PlanEvent } from './plan.js';
import type { Sink } from './sink.js';
import { envelopeSender, sendMessage, SmtpClientError } from './smtp-client.js';

export type How = 'rejected' | 'tagged' | 'withheld' | 'delivered' | 'trapped' | 'error';

export interface ReportEntry {
  readonly kind: string;
  readonly verdict: string;
  /** The reputation score shown in brackets (0 when absent): what a kind weight multiplies. */
  readonly reputation: number;
}

export interface Outcome {
  readonly seq: number;
  readonly kind: 'spam' | 'ham';
  readonly campaign: number | null;
  readonly copy: number | null;
  readonly trap: boolean;
  readonly gateway: number;
  readonly how: How;
  /** Spam: stopped (rejected, tagged, withheld). Ham: a false positive when true. */
  readonly flagged: boolean;
  readonly verdict: string | null;
  readonly score: number | null;
  readonly tests: readonly string[];
  readonly entries: readonly ReportEntry[];
  readonly mistake: boolean;
  readonly resend: boolean;
  readonly reported: boolean;
  readonly error: string | null;
}

export interface ReplayStats {
  readonly reports: number;
  readonly reportFailures: number;
  readonly reportOutput: string[];
}

export interface ReplayOptions {
  readonly concurrency: number;
  /** The message bytes of an event (original, variant or ham), LF line ends. */
  readonly messageOf: (event: PlanEvent) => Buffer;
  readonly onProgress?: (done: number, total: number, outcome: Outcome) => void;
}

const SMTP_OK = 250;
/** Reports of delivered spam are sent per gateway in batches of this many, or at the latest every FLUSH_EVERY events. */
const REPORT_BATCH = 5;
const FLUSH_EVERY = 100;
const CHECK_EVERY = 200;

/** Unfolded header block → the first value of `name` (the gateway's own fields are on top). */
function field(header: string, name: string): string | null {
  const unfolded = header.replace(/\n[ \t]+/g, ' ');
  const match = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(unfolded);
  return match ? match[1]!.trim() : null;
}

/** `ip=203.0.113.7=spam(0.97) body:minhash64:ab12…=unknown(0.00)` → kinds and verdicts. */
export function parseReport(value: string | null): ReportEntry[] {
  if (!value) return [];
  const entries: ReportEntry[] = [];
  for (const token of value.split(/\s+/)) {
    const match = /^(.+)=(spam|bulk|ham|unknown)(?:\(([\d.]+)\))?$/.exec(token);
    if (!match) continue;
    const kind = /^([a-z]+)[:=]/.exec(match[1]!)?.[1] ?? 'other';
    entries.push({ kind, verdict: match[2]!, reputation: Number(match[3] ?? 0) });
  }
  return entries;
}

export async function replay(plan: Plan, network: Network, sink: Sink, options: ReplayOptions): Promise<{ outcomes: Outcome[]; stats: ReplayStats }> {
  const outcomes: Outcome[] = new Array(plan.events.length);
  const copyDone = new Map<string, Promise<void>>();
  const mistakeReported = new Map<string, Promise<void>>();
  const queues = plan.gateways.map(() => [] as string[]);
  const chains = plan.gateways.map(() => Promise.resolve());
  const stats = { reports: 0, reportFailures: 0, reportOutput: [] as string[] };
  let completed = 0;

  const flush = (gateway: number, label: 'spam' | 'ham' = 'spam', files: string[] = queues[gateway]!.splice(0)): Promise<void> => {
    if (files.length === 0) return chains[gateway]!;
    chains[gateway] = chains[gateway]!.then(async () => {
      const result = await network.report(gateway, label, files);
      stats.reports += files.length;
      if (result.status !== 0) {
        stats.reportFailures += files.length;
        if (stats.reportOutput.length < 10) stats.reportOutput.push(`gateway ${gateway + 1} exit ${result.status}: ${result.output.trim().slice(0, 500)}`);
      }
      for (const file of files) rmSync(file, { force: true });
    });
    return chains[gateway]!;
  };

  const run = async (event: PlanEvent): Promise<void> => {
    if (event.kind === 'spam' && event.copy > 0) await copyDone.get(`${event.campaign}:${event.copy - 1}`);
    if (event.kind === 'ham' && event.resend) await mistakeReported.get(event.message.file);
    const message = options.messageOf(event);
    const mayReport = (event.kind === 'spam' && event.reported && !event.trap) || (event.kind === 'ham' && event.mistake);
    if (mayReport) sink.keepWhole(event.recipient.address);
    const gateway = network.gateways[event.gateway]!;
    const headEnd = message.indexOf('\n\n');
    const base = {
      seq: event.seq,
      kind: event.kind,
      campaign: event.kind === 'spam' ? event.campaign : null,
      copy: event.kind === 'spam' ? event.copy : null,
      trap: event.kind === 'spam' && event.trap,
      gateway: event.gateway,
      mistake: event.kind === 'ham' && event.mistake,
      resend: event.kind === 'ham' && event.resend,
    };
    let outcome: Outcome;
    try {
      const result = await sendMessage({
        port: gateway.port,
        clientIp: event.ip,
        clientHelo: event.helo,
        mailFrom: envelopeSender(message.subarray(0, headEnd < 0 ? message.length : headEnd).toString('latin1')),
        rcptTo: event.recipient.address,
        message,
      });
      const delivery = sink.take(event.recipient.address);
      if (result.stage === 'end' && result.code >= 500) {
        outcome = { ...base, how: 'rejected', flagged: true, verdict: 'spam', score: null, tests: [], entries: [], reported: false, error: null };
      } else if (result.stage !== 'end' || result.code !== SMTP_OK) {
        outcome = { ...base, how: 'error', flagged: false, verdict: null, score: null, tests: [], entries: [], reported: false, error: `${result.stage} ${result.code} ${result.text}` };
      } else if (!delivery) {
        const how: How = base.trap ? 'trapped' : 'withheld';
        outcome = { ...base, how, flagged: true, verdict: null, score: null, tests: [], entries: [], reported: false, error: null };
      } else {
        const verdictField = field(delivery.header, 'X-Nimbus-Verdict');
        const verdict = verdictField ? (verdictField.split(';')[0] ?? '').trim() : null;
        const score = Number(/score=(-?[\d.]+)/.exec(verdictField ?? '')?.[1] ?? NaN);
        const tests = (/tests=(\S+)/.exec(field(delivery.header, 'X-Spam-Status') ?? '')?.[1] ?? '').split(',').filter((t) => t !== '' && t !== 'none');
        const flagged = verdict === 'spam';
        const reported = mayReport && !flagged && delivery.file !== null;
        outcome = {
          ...base,
          how: flagged ? 'tagged' : 'delivered',
          flagged,
          verdict,
          score: Number.isFinite(score) ? score : null,
          tests,
          entries: parseReport(field(delivery.header, 'X-Nimbus-Report')),
          reported,
          error: base.trap ? 'trap copy was relayed' : null,
        };
        if (reported && delivery.file) {
          if (event.kind === 'ham') {
            mistakeReported.set(event.message.file, flush(event.gateway, 'spam', [delivery.file]));
          } else {
            queues[event.gateway]!.push(delivery.file);
            if (queues[event.gateway]!.length >= REPORT_BATCH) void flush(event.gateway);
          }
        } else if (delivery.file) {
          rmSync(delivery.file, { force: true });
        }
      }
    } catch (error) {
      sink.take(event.recipient.address);
      outcome = { ...base, how: 'error', flagged: false, verdict: null, score: null, tests: [], entries: [], reported: false, error: error instanceof SmtpClientError ? error.message : String(error) };
    }
    outcomes[event.seq] = outcome;
    completed++;
    if (completed % FLUSH_EVERY === 0) for (let g = 0; g < queues.length; g++) void flush(g);
    if (completed % CHECK_EVERY === 0) network.check();
    options.onProgress?.(completed, plan.events.length, outcome);
  };

  const inFlight = new Set<Promise<void>>();
  for (const event of plan.events) {
    while (inFlight.size >= options.concurrency) await Promise.race(inFlight);
    const task = run(event);
    if (event.kind === 'spam') copyDone.set(`${event.campaign}:${event.copy}`, task);
    const tracked = task.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  }
  await Promise.all(inFlight);
  await Promise.all(plan.gateways.map((_, g) => flush(g)));
  return { outcomes, stats };
}

/** Reads a message file as the replay sends it. */
export function readMessage(path: string): Buffer {
  return readFileSync(path);
}
