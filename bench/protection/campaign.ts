/**
 * One campaign in real time. Every gateway first gets a copy (so its cache holds the service's
 * `unknown`); then the signal: a copy to a spam trap of gateway 1, or `nimbus report --spam` (one
 * admin, three reporters at once, or an admin at the upstream of a private service); then, from
 * the signal on, a copy to every gateway every interval, identical and personalised in turn.
 * A copy counts as caught when the gateway rejected it or the sink received it with
 * `X-Nimbus-Verdict: spam`. Times are seconds since the signal, taken when a copy's SMTP
 * transaction began.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CorpusMessage } from '../eval/corpus.js';
import type { GatewayIdentity } from '../eval/plan.js';
import { changeAddress } from '../eval/received.js';
import { rngFor } from '../eval/rng.js';
import type { Sink } from '../eval/sink.js';
import { envelopeSender, sendMessage } from '../eval/smtp-client.js';
import { makeVariant } from '../eval/variants.js';
import type { ProtectionNetwork } from './network.js';
import { handoffOf } from '../eval/received.js';

export type Scenario = 'trap' | 'report' | 'voices' | 'proxy';
export const SCENARIOS: readonly Scenario[] = ['trap', 'report', 'voices', 'proxy'];

export interface CopyResult {
  readonly gateway: number;
  /** Seconds since the signal when the copy's transaction began. */
  readonly at: number;
  readonly personalised: boolean;
  readonly caught: boolean;
  /**
   * The gateway could not ask (its scan or its lookup ran out of time, or its breaker was open):
   * the machine's load, not what the network knew. Counted, but not in the protection time.
   */
  readonly overloaded: boolean;
  /** The transaction failed (not counted as caught or missed). */
  readonly error: string | null;
}

export interface CampaignResult {
  readonly file: string;
  /** Why the campaign was not measured (a copy caught before the signal, a failed signal), else null. */
  readonly skipped: string | null;
  /** Seconds the signal itself took (trap transaction, or `nimbus report` from start to the service's answer). */
  readonly signalSeconds: number;
  readonly copies: readonly CopyResult[];
}

export interface CampaignContext {
  readonly network: ProtectionNetwork;
  readonly sink: Sink;
  readonly identities: readonly GatewayIdentity[];
  readonly scenario: Scenario;
  readonly durationS: number;
  readonly intervalMs: number;
  readonly seed: string;
  /** Scratch files of the campaign. */
  readonly workDir: string;
}

const SMTP_OK = 250;
/** Tests of a verdict made without the service's answer (src/scan/judge.ts, verdict.ts). */
const OVERLOADED = /NIMBUS_SCAN_TIMEOUT|NIMBUS_LOOKUP_(TIMEOUT|ERROR|BREAKER_OPEN)/;
const VOICES = 3;

function field(header: string, name: string): string | null {
  const unfolded = header.replace(/\n[ \t]+/g, ' ');
  const match = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(unfolded);
  return match ? match[1]!.trim() : null;
}

/** Personalised copies of the campaign, made before it starts so that making them costs no measured time. */
export async function personalisedCopies(message: CorpusMessage, count: number, seed: string, domain: string): Promise<Buffer[]> {
  const copies: Buffer[] = [];
  for (let copy = 0; copy < count; copy++) {
    const variant = await makeVariant(message.raw, { seed, file: message.file, copy, recipient: { name: 'Anna Kowalski', address: `anna.${copy}@${domain}` } });
    copies.push(variant.bytes);
  }
  return copies;
}

export async function runCampaign(context: CampaignContext, index: number, message: CorpusMessage, personalised: readonly Buffer[]): Promise<CampaignResult> {
  const { network, sink, identities } = context;
  const handoff = handoffOf(message.raw);
  const headEnd = message.raw.indexOf('\n\n');
  const mailFrom = envelopeSender(message.raw.subarray(0, headEnd < 0 ? message.raw.length : headEnd).toString('latin1'));
  const rng = rngFor(context.seed, 'protection', message.file);
  let sequence = 0;
  const send = async (gateway: number, bytes: Buffer, ip: string, rcpt?: string): Promise<{ caught: boolean; overloaded: boolean; error: string | null; file: string | null }> => {
    const to = rcpt ?? `c${index}.${sequence++}@${identities[gateway]!.domain}`;
    try {
      const result = await sendMessage({ port: network.gateways[gateway]!.port, clientIp: ip, clientHelo: handoff.helo, mailFrom, rcptTo: to, message: bytes, timeoutMs: 60_000 });
      const delivery = sink.take(to);
      if (result.stage === 'end' && result.code >= 500) return { caught: true, overloaded: false, error: null, file: null };
      if (result.stage !== 'end' || result.code !== SMTP_OK) return { caught: false, overloaded: false, error: `${result.stage} ${result.code} ${result.text}`, file: null };
      if (!delivery) return { caught: true, overloaded: false, error: null, file: null };
      const verdict = (field(delivery.header, 'X-Nimbus-Verdict') ?? '').split(';')[0]!.trim();
      const tests = field(delivery.header, 'X-Spam-Status') ?? '';
      return { caught: verdict === 'spam', overloaded: OVERLOADED.test(tests), error: null, file: delivery.file };
    } catch (error) {
      sink.take(to);
      return { caught: false, overloaded: false, error: String(error), file: null };
    }
  };

  // Warm-up: every gateway asks the service once and keeps its answer.
  const warmRcpt = `c${index}.warm@${identities[0]!.domain}`;
  sink.keepWhole(warmRcpt);
  const warm = await Promise.all(identities.map((_, g) => send(g, message.raw, handoff.ip, g === 0 ? warmRcpt : undefined)));
  const delivered = warm[0]!.file;
  const cleanup = (): void => {
    if (delivered) rmSync(delivered, { force: true });
  };
  const failed = warm.find((w) => w.error !== null);
  if (failed) {
    cleanup();
    return { file: message.file, skipped: `warm-up copy failed: ${failed.error}`, signalSeconds: 0, copies: [] };
  }
  if (warm.some((w) => w.caught)) {
    cleanup();
    return { file: message.file, skipped: 'a copy was caught before the signal', signalSeconds: 0, copies: [] };
  }

  const began = performance.now();
  let signalAt: number;
  if (context.scenario === 'trap') {
    const trapped = await send(0, message.raw, handoff.ip, identities[0]!.traps[0]!);
    signalAt = performance.now();
    if (trapped.error) return { file: message.file, skipped: `trap copy failed: ${trapped.error}`, signalSeconds: 0, copies: [] };
  } else {
    if (!delivered) return { file: message.file, skipped: 'no delivered copy to report', signalSeconds: 0, copies: [] };
    const runs =
      context.scenario === 'voices'
        ? await Promise.all(Array.from({ length: VOICES }, (_, i) => network.report('reporter', i, delivered)))
        : [await network.report('admin', 0, delivered)];
    cleanup();
    const bad = runs.find((run) => run.status !== 0);
    if (bad) return { file: message.file, skipped: `nimbus report failed (${bad.status}): ${bad.output.trim().slice(0, 300)}`, signalSeconds: 0, copies: [] };
    signalAt = Math.max(...runs.map((run) => run.acceptedAt));
  }
  const signalSeconds = (signalAt - began) / 1000;

  const copies: Promise<CopyResult>[] = [];
  const ticks = Math.max(1, Math.floor((context.durationS * 1000) / context.intervalMs));
  let next = 0;
  for (let tick = 0; tick < ticks; tick++) {
    const due = signalAt + tick * context.intervalMs;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    for (let g = 0; g < identities.length; g++) {
      const isPersonalised = (tick + g) % 2 === 1 && personalised.length > 0;
      const bytes = isPersonalised ? personalised[next++ % personalised.length]! : message.raw;
      // Personalised copies come from elsewhere too, as a botnet sends them: only content can match.
      const ip = isPersonalised ? changeAddress(rng, handoff.ip, 'other-net') : handoff.ip;
      const at = (performance.now() - signalAt) / 1000;
      copies.push(send(g, bytes, ip).then((r) => ({ gateway: g, at, personalised: isPersonalised, caught: r.caught, overloaded: r.overloaded && !r.caught, error: r.error })));
    }
  }
  const results = await Promise.all(copies);
  network.check();
  // A campaign whose convicted fingerprints do not add up to a spam verdict is a matter of
  // scoring, not of speed: measured only when the service, asked afresh, says spam.
  const original = join(context.workDir, `campaign-${index}.eml`);
  writeFileSync(original, message.raw);
  const fresh = await network.freshVerdict(original);
  rmSync(original, { force: true });
  if (fresh !== 'spam') return { file: message.file, skipped: `not spam even asked afresh after the signal (${fresh}): a scoring matter, not one of speed`, signalSeconds, copies: results };
  return { file: message.file, skipped: null, signalSeconds, copies: results };
}
