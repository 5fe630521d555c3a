/** What `nimbus stats` shows of the local statistics: per-day counts and the top spam sources (IPs in the clear: local only). */
import type Database from 'better-sqlite3';

const DAY_MS = 86_400_000;

export interface StoreReport {
  readonly perDay: readonly { day: string; messages: number; spam: number }[];
  readonly topIps: readonly { item: string; count: number }[];
  readonly topNetworks: readonly { item: string; label: string | null; count: number }[];
  readonly topImages: readonly { item: string; label: string | null; count: number }[];
  readonly topDomains: readonly { item: string; label: string | null; count: number }[];
}

export function statsReport(db: Database.Database, days: number, top: number): StoreReport {
  const since = Date.now() - days * DAY_MS;
  const perDay = db
    .prepare(
      "SELECT strftime('%Y-%m-%d', time / 1000, 'unixepoch') AS day, count(*) AS messages, sum(verdict = 'spam') AS spam FROM stats WHERE time >= ? GROUP BY day ORDER BY day",
    )
    .all(since) as { day: string; messages: number; spam: number }[];
  const topIps = db
    .prepare("SELECT client_ip AS item, count(*) AS count FROM stats WHERE verdict = 'spam' AND time >= ? GROUP BY client_ip ORDER BY count DESC, item LIMIT ?")
    .all(since, top) as { item: string; count: number }[];
  const topOf = (prefix: string): { item: string; label: string | null; count: number }[] =>
    db
      .prepare(
        `SELECT json_extract(f.value, '$.text') AS item, max(json_extract(f.value, '$.label')) AS label, count(*) AS count
         FROM stats, json_each(stats.fingerprints) AS f
         WHERE stats.verdict = 'spam' AND stats.time >= ? AND json_extract(f.value, '$.text') LIKE ?
         GROUP BY item ORDER BY count DESC, item LIMIT ?`,
      )
      .all(since, `${prefix}%`, top) as { item: string; label: string | null; count: number }[];
  return { perDay, topIps, topNetworks: topOf('net:'), topImages: topOf('image:'), topDomains: topOf('url:domain:') };
}
