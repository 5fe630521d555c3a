/**
 * The frame of every console page: navigation, the signed-in user with a logout form (a POST with
 * the CSRF token), and the stylesheet from /assets. No script anywhere: the CSP forbids it.
 */
import type { Session } from './sessions.js';
import { html, type Html } from './html.js';

const PAGES = [
  ['/', 'Overview'],
  ['/history', 'History'],
  ['/why', 'Why'],
  ['/quarantine', 'Quarantine'],
  ['/participation', 'Participation'],
] as const;

/** The Keys page exists only with a service admin key; a page shows its link when it has one. */
export function page(title: string, session: Session | null, body: Html, current = '', withKeys = session?.keysPage ?? false): Html {
  const pages = withKeys ? [...PAGES, ['/keys', 'Keys'] as const] : PAGES;
  const nav = session
    ? html`<nav>${pages.map(([href, name]) => html`<a href="${href}"${current === href ? html` aria-current="page"` : ''}>${name}</a>`)}
<form method="post" action="/logout" class="logout">${csrfField(session)}<span>${session.user}</span> <button type="submit">Log out</button></form></nav>`
    : '';
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Nimbus console</title><link rel="stylesheet" href="/assets/console.css"></head>
<body><header><strong>Nimbus</strong> console</header>${nav}<main><h1>${title}</h1>
${body}</main></body></html>`;
}

export function csrfField(session: Session): Html {
  return html`<input type="hidden" name="_csrf" value="${session.csrf}">`;
}

/** A notice at the top of a page after a change (from the redirect's query). */
export function notice(text: string | undefined, kind: 'ok' | 'error' = 'ok'): Html {
  return text ? html`<p class="notice ${kind}" role="status">${text}</p>` : html``;
}
