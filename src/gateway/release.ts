/**
 * Delivery of a released quarantine entry the way the relay delivers (`nimbus quarantine release`):
 * into the Maildir when there is no next hop, else one SMTP transaction to the next hop with the
 * stored envelope, all or nothing (a refused recipient aborts it with RSET, so no recipient gets
 * a second copy on the next attempt). The quarantine itself (src/quarantine/) only stores, locks
 * and removes; it knows no delivery.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/index.js';
import { QuarantineError, type QuarantineEntry, type QuarantineMeta, type ReleaseDelivery } from '../quarantine/types.js';
import { Maildir } from './maildir.js';
import { NextHopSession, type SmtpResponse } from './next-hop.js';

/** SMTP reply codes the release path looks at (a release succeeds only on 250 to the message). */
const SMTP_OK = 250;
const SMTP_POSITIVE_LIMIT = 300;

export type ReleaseTarget = Pick<Config, 'nextHop' | 'hostname' | 'nextHopTimeoutMs' | 'dataDir'>;

/** Delivers a released entry to NIMBUS_NEXT_HOP, or into the Maildir without one. */
export async function deliverReleased(entry: QuarantineEntry, target: ReleaseTarget): Promise<ReleaseDelivery> {
  if (target.nextHop === null) {
    const name = await new Maildir(join(target.dataDir, 'maildir')).deliver([() => createReadStream(entry.path)]);
    return { to: 'maildir', reply: { code: SMTP_OK, text: `delivered into the Maildir as ${name}` } };
  }
  return { to: `${target.nextHop.host}:${target.nextHop.port}`, reply: await relayEntry(entry.meta, entry.path, target) };
}

/** One SMTP transaction to the next hop with the stored envelope; resolves with the reply to the message. */
async function relayEntry(meta: QuarantineMeta, path: string, target: ReleaseTarget): Promise<SmtpResponse> {
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
      eightBitMime: await hasEightBitBytes(path),
      size: meta.size,
    });
    if (mail.code >= SMTP_POSITIVE_LIMIT) throw refused(`MAIL FROM:<${meta.mailFrom}>`, mail);
    for (const recipient of meta.rcptTo) {
      const rcpt = await session.rcpt(recipient);
      if (rcpt.code >= SMTP_POSITIVE_LIMIT) {
        await session.rset().catch(() => undefined);
        throw refused(`RCPT TO:<${recipient}>`, rcpt);
      }
    }
    const reply = await session.data([() => createReadStream(path)]);
    if (reply.code !== SMTP_OK) throw refused('the message', reply);
    return reply;
  } catch (error) {
    if (error instanceof QuarantineError) throw error;
    throw new QuarantineError('QUARANTINE_RELEASE_FAILED', (error as Error).message, { cause: error });
  } finally {
    await session.quit();
  }
}

async function hasEightBitBytes(path: string): Promise<boolean> {
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    if (chunk.some((byte) => byte > 0x7f)) return true;
  }
  return false;
}

