/**
 * What a mailing list adds to every message it relays is not the author's content: its footer
 * ("Irish Linux Users' Group: ilug@linux.ie / http://www.linux.ie/mailman/listinfo/ilug …", a
 * Yahoo! Groups sponsor block and terms link) and links to its own site. Spam relayed by a list
 * carries them too, so spam traps convict them, and the list's ordinary mail was then scored as
 * spam (the evaluation's false positives on the full corpus: ILUG, SourceForge and Yahoo! Groups
 * list mail, tagged by the footer's links and by a body hash made mostly of the footer).
 *
 * A message is list mail when it has `List-Id` (RFC 2919, added by list managers) or
 * `Mailing-List` (ezmlm, Yahoo! Groups). For list mail, the trailing separator blocks (`-- `, or
 * rules of underscores, dashes or equals signs) are cut from the text before hashing, as long as
 * together they are at most MAX_FOOTER_LINES lines; links that appear only there are not
 * fingerprinted, nor are links to the List-Id's registrable domain.
 *
 * `List-Unsubscribe` alone does not make list mail: bulk senders and spammers add it to their own
 * mail, whose footer links are their own. The rule trusts headers the sender can write: a spammer
 * who forges a List-Id hides only a short trailer and links to the domain it names; the rest of
 * the text, the images, attachments and the sending IP are fingerprinted as always.
 */
import { getDomain } from 'tldts';
import { registrableDomain } from './url.js';

/** A footer is short: trailing blocks longer than this together are the author's text. */
export const MAX_FOOTER_LINES = 15;
const SEPARATOR = /^\s*(?:-- ?|_{10,}|-{10,}.*|={10,})\s*$/;

export interface MailingList {
  /** The List-Id between its angle brackets (e.g. `ilug.linux.ie`), or the Mailing-List address. */
  readonly id: string;
  /** The registrable domain of a List-Id (the list's own site), e.g. `linux.ie`; null otherwise. */
  readonly domain: string | null;
}

/** The list a message came through, from its List-Id or Mailing-List header values; null when none. */
export function mailingListOf(listIds: readonly string[], mailingLists: readonly string[]): MailingList | null {
  const listId = listIds[0];
  if (listId !== undefined) {
    const id = (/<([^<>\s]+)>/.exec(listId)?.[1] ?? listId.trim()).toLowerCase();
    if (id) return { id, domain: getDomain(id) ?? null };
  }
  const mailingList = mailingLists[0];
  if (mailingList !== undefined) {
    const id = (/[^\s;<>]+@[^\s;<>]+/.exec(mailingList)?.[0] ?? mailingList.trim()).toLowerCase();
    if (id) return { id, domain: null };
  }
  return null;
}

/** Whether a normalised link points at the list's own site (its List-Id domain). */
export function isListLink(url: string, list: MailingList): boolean {
  return list.domain !== null && registrableDomain(url) === list.domain;
}

/**
 * The text split before its trailing separator blocks, when they are at most MAX_FOOTER_LINES
 * lines together; null when there are none or they are longer.
 */
export function splitListFooter(text: string): { content: string; footer: string } | null {
  const lines = text.replace(/\s+$/, '').split(/\r?\n/);
  let cut = -1;
  for (let i = lines.length - 1; i >= 0 && lines.length - i <= MAX_FOOTER_LINES; i--) {
    if (SEPARATOR.test(lines[i]!)) cut = i;
  }
  if (cut < 0) return null;
  return { content: lines.slice(0, cut).join('\n'), footer: lines.slice(cut).join('\n') };
}
