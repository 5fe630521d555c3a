/**
 * Quarantine: the list (several entries released or deleted at once), and a safe preview of one:
 * its envelope, its header fields and its text as text. An HTML part is shown as its source,
 * escaped, so nothing in it runs or is fetched (the CSP would forbid that as well). A release
 * goes through src/gateway/release.ts, exactly as `nimbus quarantine release` does.
 */
import { open } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { simpleParser } from 'mailparser';
import { deliverReleased } from '../gateway/release.js';
import { checkQuarantineId, QuarantineError, type QuarantineMeta } from '../quarantine/store.js';
import { field, logChange, sendPage, sessionOf, type ConsoleContext, type Form } from './context.js';
import { formatTime, html, query, type Html } from './html.js';
import { csrfField, notice, page } from './layout.js';

/** A preview reads at most this much of the stored message. */
const PREVIEW_BYTES = 256 * 1024;

function verdictText(meta: QuarantineMeta): string {
  if (meta.verdict === null) return '–';
  return meta.score === null ? meta.verdict : `${meta.verdict} (${meta.score.toFixed(1)})`;
}

async function head(path: string): Promise<{ bytes: Buffer; cut: boolean }> {
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(PREVIEW_BYTES + 1);
    const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
    return { bytes: buffer.subarray(0, Math.min(bytesRead, PREVIEW_BYTES)), cut: bytesRead > PREVIEW_BYTES };
  } finally {
    await file.close();
  }
}

export function registerQuarantinePages(app: FastifyInstance, context: ConsoleContext): void {
  app.get<{ Querystring: { done?: string; failed?: string } }>('/quarantine', async (request, reply) => {
    const session = sessionOf(request);
    const metas = await context.quarantine.list();
    const body = html`${notice(request.query.done)}${notice(request.query.failed, 'error')}
${metas.length === 0 ? html`<p>The quarantine is empty.</p>` : html`<form method="post" action="/quarantine">${csrfField(session)}
<table id="quarantine"><thead><tr><th></th><th>time (UTC)</th><th>sender</th><th>recipients</th><th>client</th><th class="num">size</th><th>verdict</th></tr></thead><tbody>
${metas.map((m) => html`<tr data-id="${m.id}"><td><input type="checkbox" name="id" value="${m.id}" aria-label="select ${m.id}"></td><td><a href="/quarantine/${m.id}">${formatTime(m.time)}</a></td><td>${m.mailFrom === '' ? '<>' : m.mailFrom}</td><td>${m.rcptTo.join(', ')}</td><td>${m.clientIp}</td><td class="num">${m.size}</td><td>${verdictText(m)}</td></tr>`)}
</tbody></table>
<p><button type="submit" name="action" value="release">Release selected</button> <button type="submit" name="action" value="delete">Delete selected</button></p></form>`}`;
    return sendPage(reply, page('Quarantine', session, body, '/quarantine'));
  });

  app.get<{ Params: { id: string } }>('/quarantine/:id', async (request, reply) => {
    const session = sessionOf(request);
    let entry;
    try {
      entry = await context.quarantine.get(request.params.id);
    } catch (error) {
      if (!(error instanceof QuarantineError)) throw error;
      return sendPage(reply, page('Not in the quarantine', session, html`${notice(error.message, 'error')}<p><a href="/quarantine">Back to the quarantine</a></p>`), 404);
    }
    const { bytes, cut } = await head(entry.path);
    const parsed = await simpleParser(bytes, { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true, skipTextLinks: true });
    const m = entry.meta;
    const fields = parsed.headerLines.map((line) => line.line).join('\n');
    const parts: Html[] = [];
    if (parsed.text) parts.push(html`<h2>Text</h2><pre class="text">${parsed.text}</pre>`);
    if (typeof parsed.html === 'string') parts.push(html`<h2>HTML (shown as its source, never rendered)</h2><pre class="html-source">${parsed.html}</pre>`);
    if (parsed.attachments.length > 0) parts.push(html`<h2>Attachments</h2><ul>${parsed.attachments.map((a) => html`<li>${a.filename ?? '(no name)'}: ${a.contentType}, ${a.size} bytes</li>`)}</ul>`);
    const body = html`<dl class="facts"><dt>Id</dt><dd>${m.id}</dd><dt>Time (UTC)</dt><dd>${formatTime(m.time)}</dd><dt>Queue id</dt><dd>${m.queueId}</dd>
<dt>Client</dt><dd>${m.helo} [${m.clientIp}]</dd><dt>Envelope sender</dt><dd>${m.mailFrom === '' ? '<>' : m.mailFrom}</dd><dt>Recipients</dt><dd>${m.rcptTo.join(', ')}</dd>
<dt>Size</dt><dd>${m.size} bytes${cut ? ` (the preview shows the first ${PREVIEW_BYTES} bytes)` : ''}</dd><dt>Verdict</dt><dd>${verdictText(m)}</dd></dl>
<form method="post" action="/quarantine">${csrfField(session)}<input type="hidden" name="id" value="${m.id}"><button type="submit" name="action" value="release">Release</button> <button type="submit" name="action" value="delete">Delete</button></form>
<h2>Header</h2><pre class="header">${fields}</pre>${parts}`;
    return sendPage(reply, page(`Quarantined ${parsed.subject ?? 'message'}`, session, body, '/quarantine'));
  });

  app.post('/quarantine', async (request, reply) => {
    const session = sessionOf(request);
    const form = request.body as Form;
    const action = field(form, 'action');
    const ids = form.id ?? [];
    if ((action !== 'release' && action !== 'delete') || ids.length === 0) return reply.redirect(`/quarantine${query({ failed: 'Select messages, then Release or Delete.' })}`, 303);
    const done: string[] = [];
    const failed: string[] = [];
    for (const id of ids) {
      try {
        checkQuarantineId(id);
        if (action === 'release') {
          const result = await context.quarantine.release(id, (entry) => deliverReleased(entry, context.config));
          logChange(context, session, 'quarantine.release', id, `${result.reply.code} ${result.reply.text}`, { to: result.to });
        } else {
          await context.quarantine.delete(id);
          logChange(context, session, 'quarantine.delete', id, 'deleted');
        }
        done.push(id);
      } catch (error) {
        if (!(error instanceof QuarantineError)) throw error;
        logChange(context, session, `quarantine.${action}`, id, 'failed', { err: error.message });
        failed.push(`${id}: ${error.message}`);
      }
    }
    const verb = action === 'release' ? 'Released' : 'Deleted';
    return reply.redirect(`/quarantine${query({ done: done.length > 0 ? `${verb} ${done.length}: ${done.join(', ')}` : undefined, failed: failed.length > 0 ? failed.join('; ') : undefined })}`, 303);
  });
}
