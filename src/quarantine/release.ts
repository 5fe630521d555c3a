/**
 * Delivery of a released quarantine entry: one SMTP transaction to the next hop with the stored
 * envelope, all or nothing (a refused recipient aborts it with RSET, so no recipient gets a
 * second copy on the next attempt).
 */
import { createReadStream } from 'node:fs';
import type { Config } from '../config/index.js';
import { NextHopSession, type SmtpResponse } from '../gateway/next-hop.js';
import { QuarantineError, type QuarantineMeta } from './types.js';

/** SMTP reply codes the release path looks at (a release succeeds only on 250 to the message). */
export const SMTP_OK = 250;
const SMTP_POSITIVE_LIMIT = 300;

export type ReleaseTarget = Pick<Config, 'nextHop' | 'hostname' | 'nextHopTimeoutMs' | 'dataDir'>;

/** One SMTP transaction to the next hop with the stored envelope; resolves with the reply to the message. */
export async function relayEntry(meta: QuarantineMeta, path: string, target: ReleaseTarget): Promise<SmtpResponse> {
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

