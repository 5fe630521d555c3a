/**
 * Participation, the "data handling" window: the mode, the statement text (the same words as
 * `nimbus statement`), whether it is accepted, the backlog, and exactly what was sent: the last
 * batches the service acknowledged, their bodies as they went on the wire. Changing the mode is
 * done in the env file (the source of truth) and `systemctl reload`: the page says how.
 */
import type { FastifyInstance } from 'fastify';
import { statementText } from '../stats/statement.js';
import { sendPage, sessionOf, type ConsoleContext } from './context.js';
import { formatTime, html } from './html.js';
import { page } from './layout.js';

function pretty(body: string): string {
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}

export function registerParticipationPage(app: FastifyInstance, context: ConsoleContext): void {
  app.get('/participation', async (request, reply) => {
    const summary = context.stats.summary({ days: 1, top: 0 });
    const batches = context.stats.sentBatches();
    const envFile = context.config.envFile ?? '/etc/nimbus/nimbus.env';
    const body = html`<dl class="facts">
<dt>Mode</dt><dd id="mode">${summary.participation}</dd>
<dt>Statement accepted</dt><dd id="accepted">${summary.statementAccepted ? 'yes (NIMBUS_ACCEPT_STATEMENT=yes)' : 'no'}</dd>
<dt>Backlog</dt><dd id="backlog">${summary.backlog} records waiting (${summary.dropped} dropped by the outbox bounds, ${summary.uploaded} uploaded in all)</dd>
<dt>Last upload</dt><dd>${summary.lastUpload ? formatTime(summary.lastUpload) : 'never'}</dd>
<dt>Last upload error</dt><dd>${summary.lastError ?? 'none'}</dd></dl>
<h2>Changing the mode</h2>
<p>The env file is the source of truth: set <code>NIMBUS_PARTICIPATION</code> (<code>off</code>, <code>standard</code> or <code>extended</code>) and <code>NIMBUS_ACCEPT_STATEMENT=yes</code> in <code>${envFile}</code>, then run <code>systemctl reload nimbus-gateway</code>. Opting out stops every exchange at once.</p>
<h2>Last batches sent</h2>
${batches.length === 0 ? html`<p id="no-batches">No batch was uploaded yet.</p>` : batches.map((batch) => html`<details class="batch" open><summary>${batch.id}: ${formatTime(batch.sent)}, mode ${batch.mode}</summary><pre>${pretty(batch.body)}</pre></details>`)}
<h2>The statement</h2><pre id="statement">${statementText(context.config.dnsLists)}</pre>`;
    return sendPage(reply, page('Participation', sessionOf(request), body, '/participation'));
  });
}
