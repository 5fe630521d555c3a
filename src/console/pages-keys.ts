/**
 * Keys of the reputation service (with NIMBUS_CONSOLE_ADMIN_KEY): the list, a new key whose
 * token is shown once (in the answer to the POST itself, never in a URL or a log), and revoking.
 */
import type { FastifyInstance } from 'fastify';
import { KEY_ROLES } from '../reputation/api.js';
import { field, logChange, sendPage, sessionOf, type ConsoleContext, type Form } from './context.js';
import { formatTime, html, query, type Html } from './html.js';
import { csrfField, notice, page } from './layout.js';
import type { ServiceAdmin } from './service-admin.js';

async function keysPage(context: ConsoleContext, service: ServiceAdmin, top: Html, request: Parameters<typeof sessionOf>[0]): Promise<Html> {
  const session = sessionOf(request);
  let list: Html;
  try {
    const keys = await service.listKeys();
    list = html`<table id="keys"><thead><tr><th>id</th><th>role</th><th>label</th><th class="num">rate/s</th><th>created</th><th>state</th><th></th></tr></thead><tbody>
${keys.map((k) => html`<tr data-id="${k.id}"><td><code>${k.id}</code></td><td>${k.role}</td><td>${k.label}</td><td class="num">${k.rateLimit}</td><td>${formatTime(k.createdAt)}</td><td>${k.revokedAt ? `revoked ${formatTime(k.revokedAt)}` : 'active'}</td>
<td>${k.revokedAt ? '' : html`<form method="post" action="/keys/revoke">${csrfField(session)}<input type="hidden" name="id" value="${k.id}"><button type="submit">Revoke</button></form>`}</td></tr>`)}</tbody></table>`;
  } catch (error) {
    list = notice(`The service could not list its keys: ${(error as Error).message}`, 'error');
  }
  return page(
    'Keys',
    session,
    html`${top}<p>Keys of the reputation service at ${service.shownUrl}.</p>
<form method="post" action="/keys" class="filters">${csrfField(session)}<label>role<select name="role">${KEY_ROLES.map((role) => html`<option>${role}</option>`)}</select></label>
<label>label<input name="label" maxlength="200" size="30"></label><button type="submit">Add a key</button></form>${list}`,
    '/keys',
  );
}

export function registerKeysPage(app: FastifyInstance, context: ConsoleContext): void {
  const service = context.service;
  if (!service) return;

  app.get<{ Querystring: { done?: string; failed?: string } }>('/keys', async (request, reply) =>
    sendPage(reply, await keysPage(context, service, html`${notice(request.query.done)}${notice(request.query.failed, 'error')}`, request)),
  );

  app.post('/keys', async (request, reply) => {
    const session = sessionOf(request);
    const form = request.body as Form;
    const role = field(form, 'role');
    const label = field(form, 'label').trim();
    if (!(KEY_ROLES as readonly string[]).includes(role)) return reply.redirect(`/keys${query({ failed: 'Choose a role.' })}`, 303);
    try {
      const key = await service.addKey(role, label);
      logChange(context, session, 'key.add', key.id, 'done', { role });
      const shown = html`<section class="notice ok" role="status"><p>Key <code>${key.id}</code> (${key.role}) added. Its token is shown only now: copy it into the gateway's <code>NIMBUS_REPUTATION_KEY</code>.</p><pre id="token">${key.token}</pre></section>`;
      return sendPage(reply, await keysPage(context, service, shown, request));
    } catch (error) {
      logChange(context, session, 'key.add', role, 'failed', { err: (error as Error).message });
      return reply.redirect(`/keys${query({ failed: `The key was not added: ${(error as Error).message}` })}`, 303);
    }
  });

  app.post('/keys/revoke', async (request, reply) => {
    const session = sessionOf(request);
    const id = field(request.body as Form, 'id');
    try {
      await service.revokeKey(id);
      logChange(context, session, 'key.revoke', id, 'done');
      return reply.redirect(`/keys${query({ done: `Key ${id} revoked.` })}`, 303);
    } catch (error) {
      logChange(context, session, 'key.revoke', id, 'failed', { err: (error as Error).message });
      return reply.redirect(`/keys${query({ failed: `Key ${id} was not revoked: ${(error as Error).message}` })}`, 303);
    }
  });
}
