/**
 * DKIM for the common message, without mailauth's stream machinery and with its keys kept
 * (dkim-key-cache.ts); every other message is mailauth's `dkimVerify`, as before.
 *
 * mailauth's verifier reads the message as a stream (a byte at a time until the header ends, in
 * 64 KB chunks through setImmediate) and reads every signature's key anew; for a 5 KB message
 * signed once that was about 1 ms of CPU, four fifths of it outside the cryptography. The fast
 * path calls the same parts of mailauth its verifier calls (header parser, tag parser, signed
 * header selection, header and body canonicalisation, key checks, result formatting) on the
 * message in memory, so a result it gives is mailauth's result. It gives one only when the outcome
 * is the plain one:
 *
 * - the message is a Buffer with CRLF line ends only and a header that ends before the body;
 * - no ARC field (ARC needs mailauth's chain, and verifies through it);
 * - the message is unsigned (`dkim=none`), or every DKIM-Signature is well-formed with
 *   rsa-sha256 or ed25519-sha256, no `l=` and no `x=`, and passes: body hash, a key mailauth
 *   accepts, and the signature.
 *
 * Anything else (a bare LF, a failing or odd signature, a key mailauth refuses, a DNS failure)
 * returns null and the caller asks mailauth, which then gives the same result it always gave. The
 * cost of such a message is the fast path's checks plus mailauth's: those are the rare ones.
 */
import { createHash, verify, type KeyObject } from 'node:crypto';
import type { DKIMResult, DKIMVerifyResult } from 'mailauth';
import mailauthBody from 'mailauth/lib/dkim/body/index.js';
import mailauthHeader from 'mailauth/lib/dkim/header/index.js';
import mailauthTools, { type HeaderRow, type ParsedSignature } from 'mailauth/lib/tools.js';
import addressparser from 'nodemailer/lib/addressparser/index.js';
import type { DkimKeyCache } from './dkim-key-cache.js';
import { plainRelaxedBodyHash } from './dkim-plain-body.js';
import { signatureTags } from './dkim-signature-tags.js';

/** What the checks read of DKIM's outcome: mailauth's result, or the fast path's of the same shape. */
export type DkimOutcome = Pick<DKIMVerifyResult, 'headerFrom' | 'results' | 'arc'>;

export interface DkimFastPathOptions {
  /** The message's DNS (mailauth-resolver.ts): keys are asked as mailauth asks them. */
  readonly resolver: (name: string, rrtype: string) => Promise<unknown>;
  readonly keys: DkimKeyCache;
}

const CR = 0x0d;
const LF = 0x0a;
const HEADER_END = Buffer.from('\r\n\r\n');
/** The algorithms of nearly all signatures; the rest (rsa-sha1, odd spellings) go to mailauth. */
const FAST_ALGORITHMS = new Set(['rsa-sha256', 'ed25519-sha256']);
const CANONICALISATIONS = new Set(['relaxed', 'simple']);

interface Signature {
  readonly parsed: ParsedSignature;
  readonly algorithm: string;
  readonly canonicalization: string;
  readonly bodyCanon: string;
  readonly domain: string;
  readonly selector: string;
  readonly bodyHash: string;
  readonly value: string;
}

/** mailauth's result for `message`, or null: not the common case, ask mailauth. */
export async function dkimFastPath(message: Buffer, options: DkimFastPathOptions): Promise<DkimOutcome | null> {
  try {
    return await plainOutcome(message, options);
  } catch {
    // A part of mailauth that throws here may not throw in its verifier, which catches some
    // errors itself: the message is left to the verifier, which gives whatever it always gave.
    return null;
  }
}

async function plainOutcome(message: Buffer, options: DkimFastPathOptions): Promise<DkimOutcome | null> {
  const headerEnd = message.indexOf(HEADER_END);
  if (headerEnd <= 0 || hasBareLineFeed(message)) return null;
  const headers = mailauthTools.parseHeaders(message.subarray(0, headerEnd + HEADER_END.length));
  if (headers.parsed.some((row) => row.key?.startsWith('arc-'))) return null;
  const headerFrom = fromAddresses(headers.parsed);
  const fields = headers.parsed.filter((row) => row.key === 'dkim-signature');
  if (fields.length === 0) return { headerFrom, results: [unsigned()] };
  const signatures = fields.map((row) => plainSignature(signatureTags(row.line) ?? mailauthTools.parseDkimHeaders(row.line)));
  if (signatures.some((signature) => signature === null)) return null;
  const body = message.subarray(headerEnd + HEADER_END.length);
  const bodyHashes = new Map<string, string>();
  const results: DKIMResult[] = [];
  for (const signature of signatures as Signature[]) {
    let bodyHash = bodyHashes.get(signature.bodyCanon);
    if (bodyHash === undefined) {
      bodyHash = hashBody(body, signature.bodyCanon);
      bodyHashes.set(signature.bodyCanon, bodyHash);
    }
    if (bodyHash !== signature.bodyHash) return null;
    const key = await keyOf(signature, options);
    if (key === null || !signatureVerifies(signature, headers.parsed, key)) return null;
    results.push(passed(signature, headerFrom));
  }
  return { headerFrom, results };
}

/** mailauth reads a lone LF as CRLF (and a signer may have): such a message is left to it. */
function hasBareLineFeed(message: Buffer): boolean {
  for (let at = message.indexOf(LF); at !== -1; at = message.indexOf(LF, at + 1)) {
    if (at === 0 || message[at - 1] !== CR) return true;
  }
  return false;
}

/** The From addresses, read as mailauth reads them (every From field, every address in it). */
function fromAddresses(rows: readonly HeaderRow[]): string[] {
  const addresses: string[] = [];
  for (const row of rows) {
    if (row.key !== 'from') continue;
    const text = row.line.toString();
    const colon = text.indexOf(':');
    for (const parsed of addressparser((colon >= 0 ? text.slice(colon + 1) : text).trim())) {
      if (parsed.address) addresses.push(parsed.address);
    }
  }
  return addresses;
}

/** The signature's tags when it is one the fast path checks; null: leave it to mailauth. */
function plainSignature(parsed: ParsedSignature): Signature | null {
  const tags = parsed.parsed ?? {};
  const algorithm = tags.a?.value ?? '';
  const canonicalization = tags.c?.value ?? '';
  // RFC 6376 3.5: c= defaults to simple/simple, and a lone header canonicalisation means simple body.
  const [headerCanon, bodyCanon = 'simple'] = canonicalization.split('/').map((part) => part.trim().toLowerCase());
  const domain = tags.d?.value ?? '';
  const selector = tags.s?.value ?? '';
  const bodyHash = tags.bh?.value ?? '';
  const value = tags.b?.value ?? '';
  if (!FAST_ALGORITHMS.has(algorithm) || !CANONICALISATIONS.has(headerCanon || 'simple') || !CANONICALISATIONS.has(bodyCanon)) return null;
  if (domain === '' || selector === '' || bodyHash === '' || value === '' || tags.l !== undefined || tags.x !== undefined) return null;
  return { parsed, algorithm, canonicalization, bodyCanon, domain, selector, bodyHash, value };
}

function hashBody(body: Buffer, canonicalization: string): string {
  const plain = canonicalization === 'relaxed' ? plainRelaxedBodyHash(body) : null;
  if (plain !== null) return plain;
  const hash = mailauthBody.dkimBody(canonicalization, 'sha256', '');
  hash.update(body);
  return hash.digest('base64');
}

async function keyOf(signature: Signature, options: DkimFastPathOptions): Promise<KeyObject | null> {
  const name = `${signature.selector}._domainkey.${signature.domain}`;
  let records: unknown;
  try {
    records = await options.resolver(name, 'TXT');
  } catch {
    return null;
  }
  return Array.isArray(records) ? options.keys.key(name, records) : null;
}

function signatureVerifies(signature: Signature, rows: readonly HeaderRow[], key: KeyObject): boolean {
  const lines = mailauthTools.getSigningHeaderLines([...rows], signature.parsed.parsed?.h?.value, true);
  const { canonicalizedHeader } = mailauthHeader.generateCanonicalizedHeader('DKIM', lines, {
    signatureHeaderLine: signature.parsed.original,
    canonicalization: signature.canonicalization,
    instance: false,
  });
  const signed = Buffer.from(signature.value, 'base64');
  try {
    // Ed25519 signs the header's SHA-256 (RFC 8463); RSA signs the header with its own digest.
    return signature.algorithm === 'rsa-sha256'
      ? verify('sha256', canonicalizedHeader, key, signed)
      : verify(null, createHash('sha256').update(canonicalizedHeader).digest(), key, signed);
  } catch {
    return false;
  }
}

/** A passing signature's row, with the fields mailauth gives it that the checks read. */
function passed(signature: Signature, headerFrom: readonly string[]): DKIMResult {
  const status = {
    result: 'pass',
    // Key order is the order mailauth writes them in Authentication-Results.
    header: { i: `@${signature.domain}`, s: signature.selector, a: signature.algorithm, b: signature.value.substring(0, 8) },
    ...(headerFrom.length > 0 ? { aligned: alignedDomain(headerFrom[0]!, signature.domain) } : {}),
  };
  return {
    id: createHash('sha256').update(Buffer.from(signature.value, 'base64')).digest('hex'),
    signingDomain: signature.domain,
    selector: signature.selector,
    status: status as DKIMResult['status'],
    info: mailauthTools.formatAuthHeaderRow('dkim', status),
  };
}

/** mailauth's `aligned`: the signing domain when it shares the From domain's organisational domain, else false. */
function alignedDomain(from: string, domain: string): string | false {
  const match = mailauthTools.getAlignment(from.split('@').pop() ?? '', [domain]);
  return match === false ? false : match.domain || false;
}

function unsigned(): DKIMResult {
  // mailauth's row for an unsigned message has no signing domain.
  const status = { result: 'none', comment: 'message not signed' };
  return { status: status as DKIMResult['status'], info: mailauthTools.formatAuthHeaderRow('dkim', status) } as DKIMResult;
}
