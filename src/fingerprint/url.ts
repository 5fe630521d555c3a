/**
 * `url` fingerprints: the registrable domain of each link (public suffix list via tldts) and the
 * SHA-256 of the full normalised URL, for privacy-preserving lookups in extended participation.
 */
import { hash } from 'node:crypto';
import { parse as parseDomain } from 'tldts';
import { makeFingerprint, type Fingerprint } from './types.js';

const TEXT_LINK = /\b(?:https?:\/\/|www\.)[^\s<>"'`]+/gi;
const HREF = /\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))/gi;

/** Absolute http(s) URL with lower-case host, no fragment, no default port; null when unusable. */
export function normaliseUrl(candidate: string): string | null {
  let text = candidate.trim().replace(/&amp;/gi, '&').replace(/[.,;:!?)\]]+$/, '');
  if (/^www\./i.test(text)) text = `http://${text}`;
  if (!/^https?:\/\//i.test(text)) return null;
  try {
    const url = new URL(text);
    // Only a '#' makes a fragment; the setter re-parses the whole URL, so it is skipped without one.
    if (text.includes('#')) url.hash = '';
    return url.hostname ? url.href : null;
  } catch {
    return null;
  }
}

/**
 * What a reader of the HTML sees as text: markup, comments, scripts and styles removed. Links
 * written out in the text count; addresses inside markup other than href do not (an Outlook
 * message's `xmlns="http://www.w3.org/TR/REC-html40"` is no link, and counting it made w3.org a
 * spam domain after one report).
 */
export function htmlVisibleText(html: string): string {
  return html
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<[^>]*>/g, ' ');
}

/** Distinct links of the plain text and the HTML (href attributes and visible text), in order of appearance. */
export function extractUrls(text: string, html: string): string[] {
  const found = new Set<string>();
  for (const match of html.matchAll(HREF)) {
    const url = normaliseUrl(match[1] ?? match[2] ?? match[3] ?? '');
    if (url) found.add(url);
  }
  for (const source of [text, htmlVisibleText(html)]) {
    for (const match of source.matchAll(TEXT_LINK)) {
      const url = normaliseUrl(match[0]);
      if (url) found.add(url);
    }
  }
  return [...found];
}

/** The registrable domain (`example.co.uk`), or the host itself for IP literals and private suffixes. */
export function registrableDomain(url: string): string | null {
  const parsed = parseDomain(url);
  if (parsed.isIp) return parsed.hostname;
  return parsed.domain ?? parsed.hostname ?? null;
}

export function urlFingerprints(urls: readonly string[]): Fingerprint[] {
  const out: Fingerprint[] = [];
  const domains = new Set<string>();
  for (const url of urls) {
    const domain = registrableDomain(url);
    if (domain && !domains.has(domain)) {
      domains.add(domain);
      out.push(makeFingerprint('url', 'domain', domain, domain));
    }
    out.push(makeFingerprint('url', 'sha256', hash('sha256', url), url));
  }
  return out;
}
