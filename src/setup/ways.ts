/**
 * The ways Nimbus is plugged into a mail system (docs/admin/postfix.md), what each implies for
 * `nimbus setup`'s defaults, and the Postfix lines it prints for each: the lines of
 * docs/admin/postfix.md, with the addresses the admin chose (test/setup.test.ts checks that
 * with the docs' addresses they are the page's lines, byte for byte).
 */
import type { HostPort } from '../config/index.js';

export const WAY_NAMES = ['front-mx', 'before-queue', 'after-queue'] as const;
export type Way = (typeof WAY_NAMES)[number];

export interface WaySpec {
  /** One line for the menu. */
  readonly summary: string;
  /** NIMBUS_LISTEN for this way unless the admin says otherwise. */
  readonly listen: string;
  /** NIMBUS_NEXT_HOP likewise ('' delivers into the Maildir). */
  readonly nextHop: string;
  /** Postfix hands the message back through Nimbus: a next hop is required. */
  readonly needsNextHop: boolean;
  /** `reject` would make Postfix bounce (after the queue the sender is gone). */
  readonly canReject: boolean;
  /** Where docs/admin/postfix.md explains it. */
  readonly docs: string;
}

export const WAYS: Readonly<Record<Way, WaySpec>> = Object.freeze({
  'front-mx': {
    summary: 'in front of the MX: Nimbus receives mail from the Internet on port 25 and relays it to your mail server',
    listen: '0.0.0.0:25',
    nextHop: '',
    needsNextHop: false,
    canReject: true,
    docs: 'docs/admin/postfix.md#in-front-of-the-mx',
  },
  'before-queue': {
    summary: "Postfix's smtpd_proxy_filter: Postfix asks Nimbus while the sender waits, so spam can be rejected",
    listen: '127.0.0.1:2525',
    nextHop: '127.0.0.1:10026',
    needsNextHop: true,
    canReject: true,
    docs: 'docs/admin/postfix.md#before-queue-smtpd_proxy_filter',
  },
  'after-queue': {
    summary: "Postfix's content_filter: Postfix queues the mail first, then Nimbus tags it (no rejecting: that would bounce)",
    listen: '127.0.0.1:2525',
    nextHop: '127.0.0.1:10026',
    needsNextHop: true,
    canReject: false,
    docs: 'docs/admin/postfix.md#after-queue-content_filter',
  },
});

/** The Postfix lines of a way, grouped by the file they go into. */
export interface PostfixLines {
  readonly file: string;
  readonly lines: readonly string[];
}

/** `host:port` as Postfix writes an address (IPv6 in brackets). */
function address({ host, port }: HostPort): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Where Postfix on this host reaches a listener: a wildcard address is reached on loopback. */
function reachable(listen: HostPort): HostPort {
  if (listen.host === '0.0.0.0') return { host: '127.0.0.1', port: listen.port };
  if (listen.host === '::') return { host: '::1', port: listen.port };
  return listen;
}

/** The reinjection smtpd that takes mail back from Nimbus without filtering it again. */
function reinjection(nextHop: HostPort): string[] {
  return [
    `${address(nextHop)} inet n - n - - smtpd`,
    '  -o content_filter=',
    '  -o smtpd_authorized_xforward_hosts=127.0.0.0/8',
    '  -o smtpd_client_restrictions=',
    '  -o smtpd_helo_restrictions=',
    '  -o smtpd_sender_restrictions=',
    '  -o smtpd_recipient_restrictions=permit_mynetworks,reject',
    '  -o mynetworks=127.0.0.0/8',
  ];
}

/**
 * What to add to Postfix for `way`, Nimbus listening on `listen` and relaying to `nextHop`. In
 * front of the MX, Postfix is the next hop on another host and must trust this one, `thisHost`.
 */
export function postfixLines(way: Way, listenOn: HostPort, nextHop: HostPort | null, thisHost = 'ADDRESS-OF-THIS-HOST'): PostfixLines[] {
  const hop = nextHop ?? { host: '127.0.0.1', port: 10026 };
  const listen = reachable(listenOn);
  switch (way) {
    case 'after-queue':
      return [
        { file: '/etc/postfix/main.cf', lines: [`content_filter = scan:[${listen.host}]:${listen.port}`] },
        { file: '/etc/postfix/master.cf', lines: [...reinjection(hop), 'scan unix - - n - 10 smtp', '  -o smtp_send_xforward_command=yes', '  -o disable_mime_output_conversion=yes'] },
      ];
    case 'before-queue':
      return [
        {
          file: '/etc/postfix/master.cf',
          lines: ['smtp inet n - n - - smtpd', `  -o smtpd_proxy_filter=${address(listen)}`, '  -o smtpd_proxy_timeout=120s', '  -o smtpd_reject_unlisted_recipient=no', ...reinjection(hop)],
        },
      ];
    case 'front-mx':
      return [{ file: `/etc/postfix/main.cf on the next hop${nextHop ? ` (${nextHop.host})` : ''}, trusting this host`, lines: [`mynetworks = 127.0.0.0/8 ${thisHost}/32`] }];
  }
}
