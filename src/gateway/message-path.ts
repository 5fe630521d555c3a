/**
 * The relay's DATA step, before the sender's final reply: read the message into the spool (to its
 * end, whatever happens), scan it, act on the verdict (relay to the next hop or the Maildir,
 * reject, discard, quarantine), record it, and log one `message` line with the reply sent.
 */
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { Readable } from 'node:stream';
import type { Config } from '../config/index.js';
import { formatHeaderField } from '../scan/headers.js';
import type { MessageScanner, ScanRequest, ScanResult } from '../scan/types.js';
import { subjectOf } from '../scan/subject.js';
import { failedScan } from '../scan/verdict.js';
import { stripVerdictFields, tagSubject, type ByteEdit } from '../scan/header-block.js';
import type { HopLockstep } from './hop-lockstep.js';
import type { GatewayHooks } from './hooks.js';
import type { Maildir } from './maildir.js';
import type { SmtpResponse } from './next-hop.js';
import { formatReceived } from './received.js';
import type { ConnectionState, Transaction } from './session-state.js';
import { SMTP_REPLIES, SmtpReplyError, formatReplyText, mirroredReplyError } from './smtp-replies.js';
import type { MessageSpool } from '../scan/spool.js';

type Part = Buffer | (() => Readable);

/** The client as the relay saw it (or a trusted MTA reported it with XCLIENT/XFORWARD). */
export interface RelayClient {
  readonly ip: string;
  readonly helo: string;
  readonly name: string | null;
  readonly trusted: boolean;
}

/** What the DATA step needs of the gateway, read once per message. */
export interface MessagePathContext {
  readonly config: Config;
  readonly scanner: MessageScanner;
  readonly hooks: GatewayHooks;
  readonly maildir: Maildir | null;
  readonly hops: HopLockstep;
}

/** Resolves with the text of the 250 reply; rejects with the SmtpReplyError to send instead. */
export async function relayMessage(context: MessagePathContext, stream: SMTPServerDataStream, session: SMTPServerSession, state: ConnectionState, transaction: Transaction, spool: MessageSpool, client: RelayClient): Promise<string> {
  // Read the stream to its end whatever happens (STYLE avoid-4), keeping nothing past the limit.
  let spoolError: unknown = null;
  let oversized = false;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    if (oversized || spoolError) continue;
    if (spool.size + chunk.length > context.config.maxMessageSize) {
      oversized = true;
      continue;
    }
    try {
      await spool.write(chunk);
    } catch (error) {
      spoolError = error;
    }
  }
  if (!spoolError) await spool.finish().catch((error: unknown) => (spoolError = error));
  const size = stream.byteLength;
  const base = { event: 'gateway.message', queueId: transaction.queueId, clientIp: client.ip, helo: client.helo, from: transaction.mailFrom, rcptCount: transaction.relayRcpts.length + transaction.trapRcpts.length, size };
  if (oversized || stream.sizeExceeded) {
    await context.hops.reset(state);
    state.log.info({ ...base, action: 'refused', reply: '552 5.3.4', ms: Date.now() - transaction.started }, 'message too big');
    throw new SmtpReplyError(SMTP_REPLIES.MESSAGE_TOO_BIG);
  }
  if (spoolError) {
    await context.hops.reset(state);
    state.log.error({ ...base, err: spoolError }, 'spooling failed, answered 451');
    throw new SmtpReplyError(SMTP_REPLIES.LOCAL_ERROR);
  }

  const trustedClient = client.trusted;
  const request: ScanRequest = {
    id: transaction.queueId,
    message: { size, read: () => spool.readAll(), stream: () => spool.stream(0) },
    envelope: { mailFrom: transaction.mailFrom, rcptTo: [...transaction.relayRcpts, ...transaction.trapRcpts] },
    client: { ip: client.ip, helo: client.helo, name: client.name, trusted: trustedClient },
  };
  let scan: ScanResult;
  try {
    scan = await context.scanner.scan(request);
  } catch (error) {
    state.log.error({ event: 'scan.failed', queueId: transaction.queueId, err: error }, 'scan failed, relaying with verdict unknown');
    scan = failedScan(request, context.config);
  }

  const { parts, added } = relayParts(context.config, session, transaction, spool, scan, client);
  let action = scan.action;
  let nextHop: SmtpResponse | null = null;
  let reply: SmtpReplyError | null = null;
  let quarantineId: string | null = null;
  if (action === 'quarantine' && !context.hooks.quarantine) {
    state.log.warn({ event: 'gateway.quarantine_unavailable', queueId: transaction.queueId }, 'quarantine requested but no quarantine configured: tagging instead');
    action = 'tag';
  }
  if (action === 'reject') {
    await context.hops.reset(state);
    reply = new SmtpReplyError(SMTP_REPLIES.SPAM_REJECTED);
  } else if (action === 'discard' || action === 'trap') {
    await context.hops.reset(state);
  } else if (action === 'quarantine') {
    await context.hops.reset(state);
    try {
      const input = { queueId: transaction.queueId, clientIp: client.ip, clientHelo: client.helo, trustedClient, envelope: request.envelope, spamtrapHits: scan.trapHits, size, added };
      quarantineId = await context.hooks.quarantine!.store(input, await collect(parts));
    } catch (error) {
      state.log.error({ event: 'gateway.quarantine_failed', queueId: transaction.queueId, err: error }, 'quarantine failed, answered 451');
      reply = new SmtpReplyError(SMTP_REPLIES.LOCAL_ERROR);
    }
  } else if (transaction.relayRcpts.length === 0) {
    // Only spam-trap recipients: nothing to relay.
    await context.hops.reset(state);
  } else if (context.config.nextHop !== null) {
    try {
      nextHop = await context.hops.command(state, (hop) => hop.data(parts));
      if (nextHop.code >= 300) reply = mirroredReplyError(nextHop.code, nextHop.text);
    } catch (error) {
      if (!(error instanceof SmtpReplyError)) throw error;
      reply = error;
    }
  } else {
    try {
      await context.maildir!.deliver(parts);
    } catch (error) {
      state.log.error({ event: 'gateway.maildir_failed', queueId: transaction.queueId, err: error }, 'Maildir delivery failed, answered 451');
      reply = new SmtpReplyError(SMTP_REPLIES.LOCAL_ERROR);
    }
  }

  if (context.hooks.observer && (reply === null || action === 'reject')) {
    try {
      const block = context.config.historySubjects ? spool.headerBlock() : null;
      const subject = block === null ? null : subjectOf(block);
      await context.hooks.observer.processed({ id: transaction.queueId, time: new Date(transaction.started), clientIp: client.ip, helo: client.helo, size, envelope: request.envelope, subject, scan, action, nextHop });
    } catch (error) {
      state.log.error({ event: 'gateway.observer_failed', queueId: transaction.queueId, err: error }, 'statistics observer failed');
    }
  }
  const final = reply ? `${reply.responseCode} ${reply.message}` : `250 ${formatReplyText(SMTP_REPLIES.MESSAGE_ACCEPTED)} ${transaction.queueId}`;
  state.log.info(
    { ...base, verdict: scan.verdict, score: scan.score, action, quarantineId, nextHop: nextHop ? `${nextHop.code} ${nextHop.text}` : null, reply: final, ms: Date.now() - transaction.started },
    'message processed',
  );
  if (reply) throw reply;
  // A message accepted forgives earlier refusals (Postfix counts errors "without delivering mail").
  state.refusedRecipients = 0;
  // smtp-server puts MESSAGE_ACCEPTED's 2.6.0 (its DATA_OK) in front of the text itself.
  return `${SMTP_REPLIES.MESSAGE_ACCEPTED.text} ${transaction.queueId}`;
}

/**
 * Received + verdict headers, then the (edited) header block, then the untouched body; and what
 * the gateway added, as byte edits (the quarantine keeps them so that a release can take out
 * the verdict fields and the subject tag again).
 */
function relayParts(config: Config, session: SMTPServerSession, transaction: Transaction, spool: MessageSpool, scan: ScanResult, client: RelayClient): { parts: Part[]; added: ByteEdit[] } {
  const received = `${formatReceived({
    helo: client.helo,
    clientHostname: client.name,
    clientIp: client.ip,
    hostname: config.hostname,
    protocol: session.transmissionType || 'ESMTP',
    queueId: transaction.queueId,
    recipients: transaction.relayRcpts,
    date: new Date(transaction.started),
  })}\r\n`;
  const verdictFields = scan.headers.add.map((field) => `${formatHeaderField(field)}\r\n`).join('');
  const prepended = Buffer.from(received + verdictFields, 'utf8');
  const added: ByteEdit[] = verdictFields === '' ? [] : [{ at: Buffer.byteLength(received, 'utf8'), text: verdictFields, replaced: '' }];
  const body = (start: number): Part[] => spool.chunksFrom(start) ?? [() => spool.stream(start)];
  let block = spool.headerBlock();
  if (block === null) return { parts: [prepended, ...body(0)], added };
  block = stripVerdictFields(block, scan.headers.removePrefixes, scan.headers.removeAuthservIds).block;
  if (scan.headers.subjectTag !== null) {
    const tagged = tagSubject(block, scan.headers.subjectTag);
    block = tagged.block;
    if (tagged.edit) added.push({ ...tagged.edit, at: prepended.length + tagged.edit.at });
  }
  return { parts: [prepended, block, ...body(spool.headerLength)], added };
}

async function collect(parts: readonly Part[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    if (Buffer.isBuffer(part)) chunks.push(part);
    else for await (const chunk of part()) chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
