/**
 * Why: one fingerprint, typed in or clicked. What the gateway's embedded engine holds about it
 * (the answer, counters, reporters, the override and its audit trail), the service's evidence
 * when an admin key is configured, the recent messages that carried it, and a form to override
 * it (spam, bulk, ham) or clear the override, with a reason, on the local engine or the service.
 * The local engine is the file the running gateway reads, so the next copy gets the new verdict.
 */
import type { FastifyInstance } from 'fastify';
import { fingerprintText } from '../reputation/api.js';
import type { FingerprintExplanation, OverrideVerdict } from '../reputation/engine-types.js';
import { field, logChange, sendPage, sessionOf, type ConsoleContext, type Form } from './context.js';
import { formatTime, html, query, type Html } from './html.js';
import { csrfField, notice, page } from './layout.js';
import { verdictCell } from './pages-history.js';
import type { ServiceEvidence } from './service-admin.js';

const CHOICES = ['spam', 'bulk', 'ham', 'clear'] as const;
const MAX_REASON = 500;

function explanation(title: string, found: FingerprintExplanation | ServiceEvidence | null, id: string): Html {
  if (found === null) return html`<section id="${id}"><h2>${title}</h2><p>Nothing is stored about this fingerprint here.</p></section>`;
  const c = found.result.counters;
  return html`<section id="${id}"><h2>${title}</h2><dl class="facts">
<dt>Answer</dt><dd class="answer">${verdictCell(found.result.verdict)} (score ${found.result.score.toFixed(2)}, confidence ${found.result.confidence.toFixed(2)})${found.result.match ? html`, through the near neighbour <code>${found.result.match.item}</code> (${(found.result.match.similarity * 100).toFixed(0)} % similar)` : ''}</dd>
<dt>Counters</dt><dd>seen ${c.seen.toFixed(1)}, spam ${c.spam.toFixed(1)}, ham ${c.ham.toFixed(1)}, reporters ${c.reporters}; first seen ${c.firstSeen ? formatTime(c.firstSeen) : '–'}, last seen ${c.lastSeen ? formatTime(c.lastSeen) : '–'}</dd>
<dt>Override</dt><dd class="override">${found.override ? html`${verdictCell(found.override.verdict)}${found.override.reason ? html` (${found.override.reason})` : ''}` : 'none'}</dd></dl>
<h3>Reporters (${found.reporterCount})</h3>
${found.reporters.length === 0 ? html`<p>none</p>` : html`<table><thead><tr><th>key id</th><th>role</th><th class="num">seen</th><th class="num">spam</th><th class="num">weak</th><th class="num">ham</th><th>last report</th></tr></thead><tbody>
${found.reporters.map((r) => html`<tr><td>${r.id}</td><td>${'role' in r ? (r.role ?? '–') : '–'}</td><td class="num">${r.sensor.toFixed(1)}</td><td class="num">${r.spam.toFixed(1)}</td><td class="num">${r.weak.toFixed(1)}</td><td class="num">${r.ham.toFixed(1)}</td><td>${formatTime(r.lastReport)}</td></tr>`)}</tbody></table>`}
${found.neighbours.length === 0 ? '' : html`<h3>Near neighbours</h3><table><thead><tr><th>fingerprint</th><th class="num">similarity</th><th>verdict</th></tr></thead><tbody>
${found.neighbours.map((n) => html`<tr><td><a href="/why${query({ fp: n.item })}"><code>${n.item}</code></a></td><td class="num">${(n.similarity * 100).toFixed(0)} %</td><td>${verdictCell(n.verdict)} (${n.score.toFixed(2)})</td></tr>`)}</tbody></table>`}
<h3>Override audit trail</h3>
${found.audit.length === 0 ? html`<p>no override was ever set</p>` : html`<table class="audit"><thead><tr><th>when</th><th>who</th><th>before</th><th>after</th><th>reason</th></tr></thead><tbody>
${found.audit.map((a) => html`<tr><td>${formatTime(a.at)}</td><td>${a.by}</td><td>${a.before ?? 'none'}</td><td>${a.after ?? 'none'}</td><td>${a.reason ?? ''}</td></tr>`)}</tbody></table>`}
</section>`;
}

export function registerWhyPage(app: FastifyInstance, context: ConsoleContext): void {
  app.get<{ Querystring: { fp?: string; done?: string; failed?: string } }>('/why', async (request, reply) => {
    const session = sessionOf(request);
    const fp = (request.query.fp ?? '').trim();
    const lookup = html`<form method="get" action="/why" class="filters"><label>fingerprint<input name="fp" value="${fp}" size="70" placeholder="url:domain:example.biz"></label><button type="submit">Why?</button></form>`;
    if (fp === '') return sendPage(reply, page('Why', session, html`${lookup}<p>Type a fingerprint, or click one on the overview or a message's page.</p>`, '/why'));
    const valid = fingerprintText.safeParse(fp);
    if (!valid.success) return sendPage(reply, page('Why', session, html`${lookup}${notice(`Not a fingerprint: ${valid.error.issues[0]?.message ?? 'bad form'}`, 'error')}`, '/why'), 400);

    const local = await context.local.engine.explain(fp);
    let remote: Html = html``;
    if (context.service) {
      try {
        remote = explanation(`At the service (${context.service.shownUrl})`, await context.service.evidence(fp), 'service');
      } catch (error) {
        remote = html`<section id="service"><h2>At the service</h2>${notice(`The service could not be asked: ${(error as Error).message}`, 'error')}</section>`;
      }
    }
    const messages = context.history.withFingerprint(fp, 20);
    const body = html`${lookup}${notice(request.query.done)}${notice(request.query.failed, 'error')}
<p>Fingerprint <code id="fingerprint">${fp}</code></p>
<section><h2>Override</h2>
<form method="post" action="/why/override" class="filters">${csrfField(session)}<input type="hidden" name="fp" value="${fp}">
<label>verdict<select name="verdict">${CHOICES.map((choice) => html`<option value="${choice}">${choice === 'clear' ? 'clear the override' : choice}</option>`)}</select></label>
<label>reason<input name="reason" required maxlength="${MAX_REASON}" size="40"></label>
<label>where<select name="target"><option value="local">this gateway's engine</option>${context.service ? html`<option value="service">the service</option>` : ''}</select></label>
<button type="submit">Apply</button></form></section>
<div class="grid2">${explanation("This gateway's engine", local, 'local')}${remote}</div>
<section><h2>Recent messages with it</h2>
${messages.length === 0 ? html`<p>none in the recent history</p>` : html`<table><thead><tr><th>time (UTC)</th><th>queue id</th><th>client</th><th>verdict</th><th class="num">added</th></tr></thead><tbody>
${messages.map((m) => html`<tr><td>${formatTime(m.time)}</td><td><a href="/history/${m.id}">${m.queueId}</a></td><td>${m.clientIp}</td><td>${verdictCell(m.verdict)} (${m.score.toFixed(1)})</td><td class="num">${(m.fingerprints.find((f) => f.text === fp)?.contribution ?? 0).toFixed(1)}</td></tr>`)}</tbody></table>`}
</section>`;
    return sendPage(reply, page('Why', session, body, '/why'));
  });

  app.post('/why/override', async (request, reply) => {
    const session = sessionOf(request);
    const form = request.body as Form;
    const fp = field(form, 'fp').trim();
    const verdict = field(form, 'verdict');
    const reason = field(form, 'reason').trim().slice(0, MAX_REASON);
    const target = field(form, 'target') === 'service' ? 'service' : 'local';
    const back = (outcome: { done?: string; failed?: string }) => reply.redirect(`/why${query({ fp, ...outcome })}`, 303);
    if (!fingerprintText.safeParse(fp).success || !(CHOICES as readonly string[]).includes(verdict)) return back({ failed: 'Not a fingerprint or not a verdict: nothing was changed.' });
    if (reason === '') return back({ failed: 'Give a reason: it is kept in the audit trail.' });
    const by = { by: `console:${session.user}`, reason };
    try {
      if (target === 'service') {
        if (!context.service) return back({ failed: 'No service admin key is configured (NIMBUS_CONSOLE_ADMIN_KEY).' });
        if (verdict === 'clear') await context.service.clear(fp, reason);
        else await context.service.override(fp, verdict as OverrideVerdict, reason);
      } else if (verdict === 'clear') await context.local.engine.clearVerdict(fp, by);
      else await context.local.engine.setVerdict(fp, verdict as OverrideVerdict, by);
    } catch (error) {
      logChange(context, session, `override.${verdict}`, fp, 'failed', { where: target, reason, err: (error as Error).message });
      return back({ failed: `The override failed: ${(error as Error).message}` });
    }
    logChange(context, session, `override.${verdict}`, fp, 'done', { where: target, reason });
    const where = target === 'service' ? 'at the service' : "on this gateway's engine";
    return back({ done: verdict === 'clear' ? `Override cleared ${where}.` : `Overridden as ${verdict} ${where}.` });
  });
}
