/**
 * Delivery of a released quarantine entry the way the relay delivers (`nimbus quarantine
 * release`), without the verdict fields and subject tag the gateway added (a release says the
 * verdict was wrong): into the Maildir when there is no next hop, else one SMTP transaction to the
 * next hop with the stored envelope, all or nothing (a refused recipient aborts it with RSET, so
 * no recipient gets a second copy on the next attempt). The quarantine itself (src/quarantine/)
 * only stores, locks and removes; it knows no delivery.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/index.js';
import { QuarantineError, type QuarantineEntry, type QuarantineMeta, type ReleaseDelivery } from '../quarantine/types.js';
import { undoEdits } from '../scan/header-block.js';
import { Maildir } from './maildir.js';
import { NextHopSession, type SmtpResponse } from './next-hop.js';

/** SMTP reply codes the release path looks at (a release succeeds only on 250 to the message). */
const SMTP_OK = 250;
const SMTP_POSITIVE_LIMIT = 300;

export type ReleaseTarget = Pick<Config, 'nextHop' | 'hostname' | 'nextHopTimeoutMs' | 'dataDir'>;

/** A released entry as delivered: where to, the reply, and the message as it went out. */
export interface ReleasedMessage extends ReleaseDelivery {
  readonly message: Buffer;
}

/**
 * The stored message with what the gateway added undone (its verdict fields, its subject tag), as
 * the metadata records it: a released false positive must not land in the Junk folder on the
 * gateway's word. An entry stored without that record goes out as stored.
 */
export async function releasedMessage(entry: QuarantineEntry): Promise<Buffer> {
  const stored = await readFile(entry.path);
  if (entry.meta.added === undefined || entry.meta.added.length === 0) return stored;
  const message = undoEdits(stored, entry.meta.added);
  if (message === null) {
    throw new QuarantineError(
      'QUARANTINE_RELEASE_FAILED',
      `quarantined message ${entry.meta.id} does not hold the verdict fields its metadata records (was ${entry.path} edited?); nothing was delivered`,
    );
  }
  return message;
}

/** Delivers a released entry to NIMBUS_NEXT_HOP, or into the Maildir without one. */
export async function deliverReleased(entry: QuarantineEntry, target: ReleaseTarget): Promise<ReleasedMessage> {
  const message = await releasedMessage(entry);
  if (target.nextHop === null) {
    const name = await new Maildir(join(target.dataDir, 'maildir')).deliver([message]);
    return { to: 'maildir', reply: { code: SMTP_OK, text: `delivered into the Maildir as ${name}` }, message };
  }
  return { to: `${target.nextHop.host}:${target.nextHop.port}`, reply: await relayEntry(entry.meta, message, target), message };
}

/** One SMTP transaction to the next hop with the stored envelope; resolves with the reply to the message. */
async function relayEntry(meta: QuarantineMeta, message: Buffer, target: ReleaseTarget): Promise<SmtpResponse> {
  const hop = target.nextHop!;
  if (meta.rcptTo.length === 0) {
    throw new QuarantineError('QUARANTINE_RELEASE_FAILED', `quarantined message ${meta.id} has no recipient to deliver to (only spam traps)`);
  }
  const refused = (step: string, reply: SmtpResponse): QuarantineError =>
    new QuarantineError('QUARANTINE_RELEASE_REFUSED', `next hop ${hop.host}:${hop.port} refused ${step}: ${reply.code} ${reply.text}`, { reply });
  let session: NextHopSession;
  try {
    session = await NextHopSession.open({ target: hop, hostname: target.hostname, timeoutMs: target.nextHopTimeoutMs });
  } catch (error) {
    throw new QuarantineError('QUARANTINE_RELEASE_FAILED', (error as Error).message, { cause: error });
  }
  try {
    const nonAscii = /[^\x00-\x7f]/;
    const mail = await session.mail(meta.mailFrom, {
      smtpUtf8: nonAscii.test(meta.mailFrom) || meta.rcptTo.some((address) => nonAscii.test(address)),
      eightBitMime: message.some((byte) => byte > 0x7f),
      size: message.length,
    });
    if (mail.code >= SMTP_POSITIVE_LIMIT) throw refused(`MAIL FROM:<${meta.mailFrom}>`, mail);
    for (const recipient of meta.rcptTo) {
      const rcpt = await session.rcpt(recipient);
      if (rcpt.code >= SMTP_POSITIVE_LIMIT) {
        await session.rset().catch(() => undefined);
        throw refused(`RCPT TO:<${recipient}>`, rcpt);
      }
    }
    const reply = await session.data([message]);
    if (reply.code !== SMTP_OK) throw refused('the message', reply);
    return reply;
  } catch (error) {
    if (error instanceof QuarantineError) throw error;
    throw new QuarantineError('QUARANTINE_RELEASE_FAILED', (error as Error).message, { cause: error });
  } finally {
    await session.quit();
  }
}
