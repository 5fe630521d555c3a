/**
 * The end of a message through the milter: the scan (the relay's call, with the client and
 * envelope from the callbacks and macros), progress packets while it runs so that Postfix's
 * milter_content_timeout does not fire, Nimbus's own quarantine when asked, the statistics record
 * (durable before the MTA hears the answer, as for the relay), one `milter.message` log line, and
 * the packets to answer with.
 *
 * Failure policy: a scan that fails or runs out of its budget, or an error of Nimbus's own, is
 * answered as NIMBUS_MILTER_ON_ERROR says (`accept` by default, with verdict `unknown`), logged
 * and counted in nimbus_milter_failures_total; never a lost or held message.
 */
import type { Config } from '../config/index.js';
import type { Logger } from '../log.js';
import type { QuarantineSink } from '../quarantine/types.js';
import { stripVerdictFields, tagSubject, type ByteEdit } from '../scan/header-block.js';
import { formatHeaderField } from '../scan/headers.js';
import type { MessageObserver } from '../scan/recorder.js';
import { subjectOf } from '../scan/subject.js';
import type { MessageScanner, ScanRequest, ScanResult } from '../scan/types.js';
import { failedScan } from '../scan/verdict.js';
import type { GatewayMetrics } from '../stats/index.js';
import { ACTION_FLAGS, REPLIES, encodePacket } from './codec.js';
import { decide, failureReply } from './actions.js';
import type { MilterMessage } from './message.js';

/** How often a running scan tells the MTA it is still at work (SMFIR_PROGRESS). */
export const PROGRESS_INTERVAL_MS = 10_000;

/** What a milter session runs with; `config` is read per message (SIGHUP replaces it). */
export interface MilterContext {
  config(): Config;
  readonly scanner: MessageScanner;
  readonly observer: MessageObserver | null;
  readonly quarantine: QuarantineSink;
  readonly metrics: GatewayMetrics | null;
  /** PROGRESS_INTERVAL_MS unless given (tests). */
  readonly progressIntervalMs?: number;
}

export interface MilterClient {
  readonly ip: string | null;
  readonly name: string | null;
  readonly helo: string;
  readonly trusted: boolean;
}

type FailureReason = 'scan-failed' | 'scan-timeout' | 'internal' | 'quarantine-failed';

/** The packets that answer the end of `message` (modifications, then the final reply). */
export async function finishMessage(context: MilterContext, message: MilterMessage, client: MilterClient, macros: ReadonlyMap<string, string>, granted: number, send: (packet: Buffer) => void, log: Logger): Promise<Buffer[]> {
  const config = context.config();
  const queueId = macros.get('i') || message.id;
  const rcptTo = message.recipients.map((recipient) => recipient.address);
  const base = { event: 'milter.message', queueId, clientIp: client.ip, helo: client.helo, from: message.mailFrom, rcptCount: rcptTo.length, size: message.size,
    truncated: message.truncated, spooled: message.spool.onDisk, exactHeaders: message.leadingSpace, daemon: macros.get('daemon_name') ?? null, authenticated: Boolean(macros.get('auth_authen')) };
  const failed = (reason: FailureReason, error: unknown): Buffer[] => {
    context.metrics?.milterFailures.inc({ reason });
    const { final, reply } = failureReply(config.milterOnError);
    log.error({ ...base, err: error, reason, reply, ms: Date.now() - message.started }, `Nimbus failed (${reason}), answered ${reply}`);
    return [final];
  };

  try {
    const request: ScanRequest = {
      id: queueId,
      message: message.source(),
      envelope: { mailFrom: message.mailFrom, rcptTo },
      client: { ip: client.ip, helo: client.helo, name: client.name, trusted: client.trusted },
    };
    const progress = setInterval(() => send(encodePacket(REPLIES.PROGRESS)), context.progressIntervalMs ?? PROGRESS_INTERVAL_MS);
    let scan: ScanResult;
    try {
      scan = await context.scanner.scan(request);
    } catch (error) {
      scan = failedScan(request, config);
      log.error({ event: 'scan.failed', queueId, err: error }, 'scan failed');
    } finally {
      clearInterval(progress);
    }
    if (scan.outcome !== 'scanned') {
      context.metrics?.milterFailures.inc({ reason: scan.outcome === 'timeout' ? 'scan-timeout' : 'scan-failed' });
      if (config.milterOnError === 'tempfail') {
        log.warn({ ...base, outcome: scan.outcome, reply: 'tempfail', ms: Date.now() - message.started }, `scan ${scan.outcome}, answered tempfail (NIMBUS_MILTER_ON_ERROR)`);
        return [encodePacket(REPLIES.TEMPFAIL)];
      }
    }

    let quarantine: 'mta' | 'store' = config.milterQuarantine === 'store' || (granted & ACTION_FLAGS.QUARANTINE) === 0 ? 'store' : 'mta';
    let quarantineId: string | null = null;
    if (scan.action === 'quarantine' && quarantine === 'store') {
      try {
        quarantineId = await storeInQuarantine(context.quarantine, message, client, queueId, scan);
      } catch (error) {
        if ((granted & ACTION_FLAGS.QUARANTINE) === 0) return failed('quarantine-failed', error);
        // Held by the MTA instead: neither delivered as spam nor lost.
        context.metrics?.milterFailures.inc({ reason: 'quarantine-failed' });
        log.error({ event: 'milter.quarantine_failed', queueId, err: error }, "Nimbus's quarantine failed: the message goes to the MTA's hold queue instead");
        quarantine = 'mta';
      }
    }
    const decision = decide({ scan, headers: message.headers, leadingSpace: message.leadingSpace, recipients: message.recipients, granted, quarantine });

    if (context.observer) {
      try {
        const block = config.historySubjects ? message.spool.headerBlock() : null;
        const subject = block === null ? null : subjectOf(block);
        await context.observer.processed({ id: queueId, time: new Date(message.started), clientIp: client.ip ?? '', helo: client.helo, size: message.size, envelope: request.envelope, subject, scan, action: decision.action, nextHop: null });
      } catch (error) {
        log.error({ event: 'milter.observer_failed', queueId, err: error }, 'statistics observer failed');
      }
    }
    // Written out rather than `{ ...base, … }` (the same fields, in the same order): node 20's V8
    // builds such a spread several times slower than a literal (a throwaway microbenchmark), and
    // this line alone was ~0.8% of the milter's CPU (CPU profile, text mix). The type makes a field added to
    // `base` fail to compile until it is written here too. The rare lines above keep the spread.
    const line: typeof base & Record<string, unknown> = {
      event: base.event, queueId: base.queueId, clientIp: base.clientIp, helo: base.helo, from: base.from, rcptCount: base.rcptCount, size: base.size,
      truncated: base.truncated, spooled: base.spooled, exactHeaders: base.exactHeaders, daemon: base.daemon, authenticated: base.authenticated,
      outcome: scan.outcome, verdict: scan.verdict, score: scan.score, action: decision.action, trapHits: scan.trapHits.length, quarantineId, reply: decision.reply, ms: Date.now() - message.started,
    };
    log.info(line, 'message processed');
    return [...decision.modifications, decision.final];
  } catch (error) {
    return failed('internal', error);
  }
}

/** The message as it would have been delivered (verdict fields, subject tag), in Nimbus's quarantine. */
async function storeInQuarantine(sink: QuarantineSink, message: MilterMessage, client: MilterClient, queueId: string, scan: ScanResult): Promise<string> {
  const spool = message.spool;
  const verdictFields = scan.headers.add.map((field) => `${formatHeaderField(field)}\r\n`).join('');
  const added: ByteEdit[] = verdictFields === '' ? [] : [{ at: 0, text: verdictFields, replaced: '' }];
  const prepended = Buffer.from(verdictFields, 'utf8');
  let block = stripVerdictFields(spool.headerBlock() ?? Buffer.alloc(0), scan.headers.removePrefixes, scan.headers.removeAuthservIds).block;
  if (scan.headers.subjectTag !== null) {
    const tagged = tagSubject(block, scan.headers.subjectTag);
    block = tagged.block;
    if (tagged.edit) added.push({ ...tagged.edit, at: prepended.length + tagged.edit.at });
  }
  const body: Buffer[] = [];
  for await (const chunk of spool.stream(spool.headerLength)) body.push(chunk as Buffer);
  const rcptTo = message.recipients.map((recipient) => recipient.address);
  const input = {
    queueId, clientIp: client.ip ?? '', clientHelo: client.helo, trustedClient: client.trusted,
    envelope: { mailFrom: message.mailFrom, rcptTo }, spamtrapHits: scan.trapHits, size: message.size, added,
  };
  return sink.store(input, Buffer.concat([prepended, block, ...body]), { verdict: scan.verdict, score: scan.score });
}
