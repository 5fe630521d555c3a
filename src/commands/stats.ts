/**
 * `nimbus stats [--json] [--days N]`: local statistics (client IPs in the clear: this is the
 * admin's own host), the outbox backlog and the participation state. Read-only: it opens the
 * store without starting an uploader, so it is safe beside a running gateway (WAL readers).
 */
import { loadConfig } from '../config/index.js';
import { createLogger } from '../log.js';
import { openStatistics, type StatsSummary } from '../stats/index.js';

const EXIT_USAGE = 64;

export async function run(args: string[]): Promise<number> {
  const json = args.includes('--json');
  const daysAt = args.indexOf('--days');
  const days = daysAt >= 0 ? Number(args[daysAt + 1]) : 14;
  if (!Number.isInteger(days) || days < 1) {
    process.stderr.write('nimbus stats: --days expects a whole number of days >= 1\n');
    return EXIT_USAGE;
  }
  const config = loadConfig();
  const stats = openStatistics(config, createLogger('silent'), { upload: false });
  try {
    const summary = stats.summary({ days });
    process.stdout.write(json ? `${JSON.stringify(summary, null, 2)}\n` : formatSummary(summary, days));
  } finally {
    await stats.close();
  }
  return 0;
}

export function formatSummary(s: StatsSummary, days: number): string {
  const out: string[] = [];
  out.push(`participation: ${s.participation}  statement accepted: ${s.statementAccepted ? 'yes' : 'no'}`);
  out.push(`outbox backlog: ${s.backlog} records  dropped by overflow/age: ${s.dropped}  uploaded: ${s.uploaded}`);
  out.push(`last successful upload: ${s.lastUpload ?? 'never'}`);
  out.push(`last upload error: ${s.lastError ?? 'none'}`);
  out.push(`attachment samples waiting: ${s.samples.waiting} (${s.samples.waitingBytes} bytes)  uploaded: ${s.samples.uploaded}  dropped: ${s.samples.dropped}`);
  out.push('', `messages per day (last ${days} days, UTC):`);
  if (s.perDay.length === 0) out.push('  (none)');
  for (const d of s.perDay) out.push(`  ${d.day}  ${String(d.messages).padStart(8)} messages  ${String(d.spam).padStart(8)} spam`);
  const section = (title: string, rows: readonly { item: string; label?: string | null; count: number }[]): void => {
    out.push('', `${title}:`);
    if (rows.length === 0) out.push('  (none)');
    for (const r of rows) out.push(`  ${String(r.count).padStart(8)}  ${r.label ? `${r.label}  (${r.item})` : r.item}`);
  };
  section('top spam IPs', s.topIps);
  section('top spam networks', s.topNetworks);
  section('top spam images', s.topImages);
  section('top spam link domains', s.topDomains);
  return `${out.join('\n')}\n`;
}
