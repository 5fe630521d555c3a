/**
 * History: the messages the relay handled, newest first, filtered by verdict, action, client,
 * sender and time; a message's page lists each fingerprint with its answer, weight and what it
 * added to the score. Every value from mail goes through `html` (escaped).
 */
import type { FastifyInstance } from 'fastify';
import { sendPage, sessionOf, type ConsoleContext } from './context.js';
import { formatTime, html, query, type Html } from './html.js';
import { page } from './layout.js';
import type { HistoryFilter, HistoryRow } from '../stats/history-store.js';

const PAGE_SIZE = 50;
const VERDICTS = ['spam', 'bulk', 'ham', 'unknown'];
const ACTIONS = ['deliver', 'tag', 'reject', 'quarantine', 'discard', 'trap'];

interface HistoryQuery {
  verdict?: string;
  action?: string;
  client?: string;
  sender?: string;
  since?: string;
  until?: string;
  before?: string;
}

/** `2026-12-07T14:00` (a datetime-local field, read as UTC) or any date Date.parse takes; undefined when blank or bad. */
function parseTime(text: string | undefined): number | undefined {
  if (!text) return undefined;
  const value = Date.parse(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(text) ? `${text}Z` : text);
  return Number.isFinite(value) ? value : undefined;
}

export function verdictCell(verdict: string): Html {
  return html`<span class="verdict-${verdict}">${verdict}</span>`;
}

function select(name: string, options: readonly string[], chosen: string | undefined): Html {
  return html`<label>${name}<select name="${name}"><option value="">any</option>${options.map((option) => html`<option${option === chosen ? html` selected` : ''}>${option}</option>`)}</select></label>`;
}

export function registerHistoryPages(app: FastifyInstance, context: ConsoleContext): void {
  app.get<{ Querystring: HistoryQuery }>('/history', async (request, reply) => {
    const q = request.query;
    const before = Number(q.before);
    const filter: HistoryFilter = {
      ...(VERDICTS.includes(q.verdict ?? '') ? { verdict: q.verdict } : {}),
      ...(ACTIONS.includes(q.action ?? '') ? { action: q.action } : {}),
      ...(q.client ? { client: q.client.trim() } : {}),
      ...(q.sender ? { sender: q.sender.trim() } : {}),
      ...(parseTime(q.since) !== undefined ? { since: parseTime(q.since) } : {}),
      ...(parseTime(q.until) !== undefined ? { until: parseTime(q.until) } : {}),
      ...(Number.isInteger(before) && before > 0 ? { before } : {}),
      limit: PAGE_SIZE,
    };
    const rows = context.history.list(filter);
    const showSubjects = rows.some((row) => row.subject !== null);
    const older = rows.length === PAGE_SIZE ? query({ ...q, before: rows[rows.length - 1]!.id }) : null;
    const body = html`
<form method="get" action="/history" class="filters">
${select('verdict', VERDICTS, q.verdict)}${select('action', ACTIONS, q.action)}
<label>client<input name="client" value="${q.client ?? ''}" placeholder="203.0.113.7"></label>
<label>sender<input name="sender" value="${q.sender ?? ''}" placeholder="address or domain"></label>
<label>since (UTC)<input name="since" type="datetime-local" value="${q.since ?? ''}"></label>
<label>until (UTC)<input name="until" type="datetime-local" value="${q.until ?? ''}"></label>
<button type="submit">Filter</button> <a href="/history">clear</a></form>
${rows.length === 0
  ? html`<p>No message matches.</p>`
  : html`<table id="history"><thead><tr><th>time (UTC)</th><th>queue id</th><th>client</th><th>sender</th><th class="num">rcpts</th><th class="num">size</th><th>verdict</th><th class="num">score</th><th>action</th>${showSubjects ? html`<th>subject</th>` : ''}</tr></thead><tbody>
${rows.map((row) => html`<tr data-queue-id="${row.queueId}"><td>${formatTime(row.time)}</td><td><a href="/history/${row.id}">${row.queueId}</a></td><td>${row.clientIp}<br><small>${row.helo}</small></td><td>${row.mailFrom === '' ? '<>' : row.mailFrom}</td><td class="num">${row.rcptCount}</td><td class="num">${row.size}</td><td>${verdictCell(row.verdict)}</td><td class="num">${row.score.toFixed(1)}</td><td>${row.action}</td>${showSubjects ? html`<td class="subject">${row.subject ?? ''}</td>` : ''}</tr>`)}
</tbody></table>`}
${older ? html`<p><a href="/history${older}">Older messages</a></p>` : ''}`;
    return sendPage(reply, page('History', sessionOf(request), body, '/history'));
  });

  app.get<{ Params: { id: string } }>('/history/:id', async (request, reply) => {
    const id = Number(request.params.id);
    const row = Number.isInteger(id) ? context.history.get(id) : null;
    if (!row) return sendPage(reply, page('Message not found', sessionOf(request), html`<p>No message ${request.params.id} in the history (it may be older than NIMBUS_HISTORY_RETENTION_DAYS). <a href="/history">Back to the history</a>.</p>`), 404);
    return sendPage(reply, page(`Message ${row.queueId}`, sessionOf(request), messageDetail(row), '/history'));
  });
}

function messageDetail(row: HistoryRow): Html {
  const fingerprints = [...row.fingerprints].sort((a, b) => b.contribution - a.contribution);
  return html`<dl class="facts">
<dt>Time (UTC)</dt><dd>${formatTime(row.time)}</dd>
<dt>Queue id</dt><dd>${row.queueId}</dd>
<dt>Client</dt><dd>${row.clientIp} (HELO ${row.helo})</dd>
<dt>Envelope sender</dt><dd>${row.mailFrom === '' ? '<>' : row.mailFrom}</dd>
<dt>Recipients</dt><dd>${row.rcptCount}</dd>
<dt>Size</dt><dd>${row.size} bytes</dd>
${row.subject !== null ? html`<dt>Subject</dt><dd class="subject">${row.subject}</dd>` : ''}
<dt>Verdict</dt><dd id="verdict">${verdictCell(row.verdict)}, score ${row.score.toFixed(1)}</dd>
<dt>Action</dt><dd>${row.action}</dd>
<dt>Tests</dt><dd>${row.tests.length === 0 ? 'none' : row.tests.join(', ')}</dd></dl>
<h2>Fingerprints</h2>
<table id="fingerprints"><thead><tr><th>fingerprint</th><th>what</th><th>answer</th><th class="num">reputation</th><th class="num">weight</th><th class="num">added to the score</th></tr></thead><tbody>
${fingerprints.map((f) => html`<tr><td><a href="/why${query({ fp: f.text })}"><code>${f.text}</code></a></td><td>${f.label ?? ''}</td><td>${verdictCell(f.verdict)}${f.complete ? '' : html` <small>(local data only: the service did not answer)</small>`}</td><td class="num">${f.reputation.toFixed(2)}</td><td class="num">${f.weight}</td><td class="num">${f.contribution.toFixed(1)}</td></tr>`)}
</tbody></table>`;
}
