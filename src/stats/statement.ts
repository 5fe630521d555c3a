/**
 * The text of `nimbus statement`, generated from wire.ts (STATEMENT, NEVER_SENT, toWireRecord)
 * so that what is printed is what is sent. The example records are the real wire output of a
 * sample message whose local record does carry an IP, a file name and a URL with an address.
 */
import { PARTICIPATION_MODES, type DnsListEntry, type ParticipationMode } from '../config/index.js';
import { LIST_KIND_TELLS } from '../dns/lists.js';
import type { ReportRecord } from '../reputation/api.js';
import { SAMPLE_RULES } from './samples.js';
import type { LocalRecord } from './types.js';
import { NEVER_SENT, STATEMENT, toWireRecord } from './wire.js';

const HEX64 = (seed: string): string => seed.repeat(64).slice(0, 64);
/** A body:minhash64 is 64 positions of 4 hex digits (src/fingerprint/forms.ts). */
const HEX256 = (seed: string): string => seed.repeat(128).slice(0, 256);

/** A sample local record: what the gateway keeps about one spam message. */
export const SAMPLE_RECORD: LocalRecord = Object.freeze({
  id: '0f8e6c2a-5b1d-4c3e-9a7f-2d4b6e8a0c1e',
  time: Date.parse('2026-01-15T10:20:30.000Z'),
  fingerprints: [
    { text: `ip:sha256:${HEX64('a1')}`, label: '203.0.113.7' },
    { text: `net:sha256:${HEX64('b2')}`, label: '203.0.113.0/24' },
    { text: `image:sha256:${HEX64('c3')}`, label: 'offer.png' },
    { text: `image:phash256:${HEX64('d4')}`, label: 'offer.png' },
    { text: `attachment:sha256:${HEX64('e5')}`, label: 'invoice.pdf' },
    { text: `body:minhash64:${HEX256('f6')}` },
    { text: 'url:domain:example.biz', label: 'example.biz' },
    { text: `url:sha256:${HEX64('07')}`, label: 'https://shop.example.biz/track?u=alice%40example.org' },
  ],
  verdict: 'spam',
  score: 12,
  action: 'tag',
  size: 48213,
  urls: ['https://shop.example.biz/track?u=alice%40example.org'],
  attachments: [{ sha256: HEX64('e5'), type: 'application/pdf', size: 20480 }],
});

export function exampleRecord(mode: ParticipationMode): ReportRecord | null {
  return toWireRecord(SAMPLE_RECORD, mode);
}

/**
 * The public DNS lists are an opt-in of their own, apart from participation: what each configured
 * list (NIMBUS_DNS_LISTS) is told, and by whom.
 */
export function dnsListLines(lists: readonly DnsListEntry[]): string[] {
  const lines = [
    '== Public DNS lists (NIMBUS_DNS_LISTS) ==',
    '  Apart from NIMBUS_PARTICIPATION, and whatever it says: every configured list is asked about every message,',
    "  by this host's resolvers (NIMBUS_DNS_SERVERS, else the system's), so the list's operator, and every resolver",
    '  on the way, learns what the query names:',
  ];
  if (lists.length === 0) return [...lines, '  No list is configured: nothing is asked.'];
  for (const list of lists) lines.push(`    ${list.name} (${list.zone}): ${LIST_KIND_TELLS[list.kind]}`);
  lines.push('  What the lists answer stays on this host: it is in no statistics record, lookup, feedback or sample.');
  return lines;
}

export function statementText(lists: readonly DnsListEntry[] = []): string {
  const lines: string[] = [
    'Nimbus participation statement: exactly what leaves this host in each NIMBUS_PARTICIPATION mode.',
    'Any exchange with a reputation service needs NIMBUS_ACCEPT_STATEMENT=yes.',
    '',
    'Never sent, in any mode:',
    ...NEVER_SENT.map((item) => `  - ${item}`),
    '',
  ];
  for (const mode of PARTICIPATION_MODES) {
    lines.push(`== ${mode} ==`);
    if (mode === 'off') {
      lines.push('  Nothing is sent: no lookups, no statistics. Records are kept locally (`nimbus stats`).', '');
      continue;
    }
    lines.push(`  Lookups to NIMBUS_REPUTATION_URL send the fingerprints listed under "fingerprints" below, nothing else.`);
    lines.push('  Statistics records (POST /v1/reports, in batches) carry:');
    for (const entry of STATEMENT[mode]) lines.push(`    ${entry.field}: ${entry.what}`);
    lines.push('  Example record as sent:');
    lines.push(...JSON.stringify(exampleRecord(mode), null, 2).split('\n').map((line) => `    ${line}`));
    if (mode === 'extended') lines.push(...SAMPLE_RULES.map((line) => `  ${line}`));
    else lines.push('  No attachment bytes: no samples are captured or sent in this mode.');
    lines.push('');
  }
  lines.push('Opting in uploads the records gathered while off, unless NIMBUS_UPLOAD_BACKLOG=no; never samples, which are only captured while extended.');
  lines.push('Opting out (or withdrawing acceptance) stops every exchange at once, including an upload in flight.');
  lines.push('', ...dnsListLines(lists));
  return `${lines.join('\n')}\n`;
}
