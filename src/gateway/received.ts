/**
 * The gateway's Received field, in the form Postfix writes it so that log correlation and
 * header analysers read it as usual:
 *   Received: from HELO (rdns-or-[ip] [ip]) by hostname (Nimbus) with ESMTPS id QUEUEID for <rcpt>; date
 * `for <rcpt>` only with a single recipient (as Postfix): listing several would disclose Bcc.
 */
import { foldHeader } from '../scan/headers.js';

export interface ReceivedInput {
  readonly helo: string;
  /** Reverse DNS name, or null/`[ip]` when there is none. */
  readonly clientHostname: string | null;
  readonly clientIp: string;
  readonly hostname: string;
  /** ESMTP, ESMTPS, ESMTPA, ESMTPSA (or SMTP after HELO). */
  readonly protocol: string;
  readonly queueId: string;
  readonly recipients: readonly string[];
  readonly date: Date;
}

export function formatReceived(input: ReceivedInput): string {
  const ip = input.clientIp.replace(/^::ffff:(?=\d+\.)/i, '');
  const literal = ip.includes(':') ? `[IPv6:${ip}]` : `[${ip}]`;
  const name = input.clientHostname && !input.clientHostname.startsWith('[') ? input.clientHostname : literal;
  const clean = (text: string): string => text.replace(/[\s()<>;]+/g, '_').slice(0, 255) || 'unknown';
  const forClause = input.recipients.length === 1 ? `\r\n\tfor <${input.recipients[0]}>` : '';
  return foldHeader(
    `Received: from ${clean(input.helo)} (${name === literal ? literal : clean(name)} ${literal})\r\n\tby ${clean(input.hostname)} (Nimbus) with ${input.protocol} id ${input.queueId}${forClause}; ${rfc5322Date(input.date)}`,
    998,
  );
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `Mon, 23 Nov 2026 08:01:02 +0000` (UTC: the gateway's logs are UTC too). */
export function rfc5322Date(date: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${DAYS[date.getUTCDay()]}, ${date.getUTCDate()} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`;
}
