/**
 * Relay policy at RCPT as data: whether a client may give a recipient. Pure (no session, no
 * I/O); server.ts maps the verdict to its reply and log line.
 */

export type RecipientVerdict = 'accept' | 'relay-denied' | 'routing-refused';

/**
 * A trusted client may give any recipient. Any other client only recipients in a relay domain,
 * and among those none with sender-specified routing (see `hasSenderRouting`).
 */
export function checkRecipient(recipient: string, trusted: boolean, relayDomains: readonly string[]): RecipientVerdict {
  if (trusted) return 'accept';
  const at = recipient.lastIndexOf('@');
  if (!relayDomainMatches(relayDomains, recipient.slice(at + 1))) return 'relay-denied';
  if (hasSenderRouting(recipient.slice(0, Math.max(at, 0)))) return 'routing-refused';
  return 'accept';
}

/**
 * True when a local part routes the mail further: `user%other.test`, `other.test!user`,
 * `user@other.test` (the last only quoted). The next hop trusts the gateway, and an MTA such as
 * Postfix rewrites these into `user@other.test` for its own domains (allow_percent_hack,
 * swap_bangpath, also inside a quoted local part) and relays them on: an open relay through the
 * gateway. Postfix refuses the same from untrusted clients (allow_untrusted_routing=no, which
 * also looks inside quotes); quotes and backslashes do not hide the characters from this test.
 */
export function hasSenderRouting(localPart: string): boolean {
  return /[%!@]/.test(localPart);
}

/** `example.com` matches itself; `*.example.com` and `.example.com` match its subdomains. */
export function relayDomainMatches(relayDomains: readonly string[], domain: string): boolean {
  const d = domain.replace(/^\[|\]$/g, '').toLowerCase();
  return relayDomains.some((entry) => {
    if (entry.startsWith('*.')) return d.endsWith(entry.slice(1));
    if (entry.startsWith('.')) return d.endsWith(entry);
    return d === entry;
  });
}
