/**
 * Overview: messages per hour by verdict (24 hours) and per day (14 days), the spam share, the
 * fingerprints that added most points, and the state of participation, from the history's side
 * tables and the statistics store (a few hundred rows, whatever the traffic).
 */
import type { FastifyInstance } from 'fastify';
import { barChart, VERDICT_ORDER, type Bucket } from './chart.js';
import { sendPage, sessionOf, type ConsoleContext } from './context.js';
import { formatTime, html, query } from './html.js';
import { page } from './layout.js';

const HOUR_MS = 3_600_000;
const BREAKER_STATES = ['closed', 'half-open', 'open'] as const;
/** The overview must not wait on a gateway that does not answer. */
const METRICS_TIMEOUT_MS = 1000;
const DAY_MS = 86_400_000;

function buckets(counts: readonly { hour: number; verdict: string; count: number }[], start: number, size: number, n: number): Bucket[] {
  const result = Array.from({ length: n }, (_, index) => ({ start: start + index * size, counts: {} as Record<string, number> }));
  for (const row of counts) {
    const index = Math.floor((row.hour - start) / size);
    if (index < 0 || index >= n) continue;
    const bucket = result[index]!.counts;
    bucket[row.verdict] = (bucket[row.verdict] ?? 0) + row.count;
  }
  return result;
}

/** The gateway's lookup breaker, read from its Prometheus endpoint; null when it has none or does not answer. */
async function breakerState(context: ConsoleContext): Promise<string | null> {
  const listen = context.config.metricsListen;
  if (listen === null) return null;
  const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  try {
    const response = await fetch(`http://${host}:${listen.port}/metrics`, { signal: AbortSignal.timeout(METRICS_TIMEOUT_MS) });
    const value = /^nimbus_lookup_breaker_state(?:\{[^}]*\})? (\d+)/m.exec(await response.text())?.[1];
    return value === undefined ? null : (BREAKER_STATES[Number(value)] ?? null);
  } catch {
    return null;
  }
}

export function registerOverviewPage(app: FastifyInstance, context: ConsoleContext): void {
  app.get('/', async (request, reply) => {
    const now = Date.now();
    const hourStart = Math.floor(now / HOUR_MS) * HOUR_MS - 23 * HOUR_MS;
    const dayStart = Math.floor(now / DAY_MS) * DAY_MS - 13 * DAY_MS;
    const counts = context.history.hourly(dayStart);
    const hours = buckets(counts, hourStart, HOUR_MS, 24);
    const days = buckets(counts, dayStart, DAY_MS, 14);
    const total = (list: Bucket[], verdict?: string) => list.reduce((sum, bucket) => sum + Object.entries(bucket.counts).reduce((s, [v, c]) => s + (verdict === undefined || v === verdict ? c : 0), 0), 0);
    const share = (list: Bucket[]) => (total(list) === 0 ? '–' : `${((100 * total(list, 'spam')) / total(list)).toFixed(1)} %`);
    const top = context.history.topContributors(now - DAY_MS, 10);
    const summary = context.stats.summary({ days: 1, top: 0 });
    const breaker = await breakerState(context);
    const body = html`
<section><h2>Messages</h2>
<p class="legend">${VERDICT_ORDER.map((verdict) => html`<span><span class="k v-${verdict}"></span>${verdict}</span>`)}</p>
<dl class="facts"><dt>Last 24 hours</dt><dd id="total-24h">${total(hours)} messages, spam share ${share(hours)}</dd>
<dt>Last 14 days</dt><dd id="total-14d">${total(days)} messages, spam share ${share(days)}</dd></dl>
${barChart('Messages per hour, last 24 hours (UTC)', hours, (start) => new Date(start).toISOString().slice(11, 16))}
${barChart('Messages per day, last 14 days (UTC)', days, (start) => new Date(start).toISOString().slice(5, 10))}
</section>
<section><h2>Fingerprints that convicted most (24 hours)</h2>
${top.length === 0
  ? html`<p>No fingerprint added points to a message yet.</p>`
  : html`<table><thead><tr><th>fingerprint</th><th>what</th><th class="num">messages</th><th class="num">points</th></tr></thead><tbody>
${top.map((row) => html`<tr><td><a href="/why${query({ fp: row.text })}"><code>${row.text}</code></a></td><td>${row.label ?? ''}</td><td class="num">${row.messages}</td><td class="num">${row.points.toFixed(1)}</td></tr>`)}
</tbody></table>`}
</section>
<section><h2>Network</h2><dl class="facts">
<dt>Participation</dt><dd>${summary.participation}</dd>
<dt>Statement accepted</dt><dd>${summary.statementAccepted ? 'yes' : 'no'}</dd>
<dt>Backlog</dt><dd>${summary.backlog} records waiting for upload</dd>
<dt>Last upload</dt><dd>${summary.lastUpload ? formatTime(summary.lastUpload) : 'never'}</dd>
<dt>Last upload error</dt><dd>${summary.lastError ?? 'none'}</dd>
<dt>Lookup breaker</dt><dd id="breaker">${breaker ?? html`unknown (read from the gateway's <code>NIMBUS_METRICS_LISTEN</code>, which is not set or does not answer)`}</dd>
</dl><p><a href="/participation">What was sent</a></p></section>`;
    return sendPage(reply, page('Overview', sessionOf(request), body, '/'));
  });
}
