/**
 * DKIM public keys already read, by the text of the DNS record that published them.
 *
 * mailauth reads the key of every signature anew: it checks the record, builds a PEM from `p=`,
 * has OpenSSL parse it, writes it out again as PEM, and the verification parses that PEM once
 * more; about 0.3 ms of CPU for a 2048-bit RSA key, more than the rest of the signature's check.
 * Here the first reading of a record is still mailauth's own (`getPublicKey`: the same checks,
 * the same minimum size), and the key it gives is kept as a node:crypto KeyObject for the next
 * message signed with it. The key is found by the record's text, not by the name it was asked
 * under, so a key changed in the DNS is a new entry: the DNS layer's TTLs still say which record
 * is current. A record mailauth refuses is not kept: the message goes to mailauth whole, which
 * gives the refusal its usual result.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import mailauthTools from 'mailauth/lib/tools.js';

/** Records kept: a few hundred bytes each; a site sees far fewer signing keys in a key's lifetime. */
export const DKIM_KEY_CACHE_ENTRIES = 2000;

export class DkimKeyCache {
  readonly #minBitLength: number;
  readonly #entries: number;
  /** Oldest first: Map keeps insertion order, and a key used again is moved to the end. */
  readonly #keys = new Map<string, KeyObject>();

  constructor(minBitLength: number, entries = DKIM_KEY_CACHE_ENTRIES) {
    this.#minBitLength = minBitLength;
    this.#entries = entries;
  }

  /**
   * The key published by `records` (the TXT answer for `name`), or null when mailauth would not
   * use it (no `p=`, bad base64, another version or type, too short): the caller then leaves the
   * signature to mailauth.
   */
  async key(name: string, records: readonly unknown[]): Promise<KeyObject | null> {
    const text = recordText(records);
    if (text === '') return null;
    const kept = this.#keys.get(text);
    if (kept !== undefined) {
      this.#keys.delete(text);
      this.#keys.set(text, kept);
      return kept;
    }
    let pem: string | Buffer;
    try {
      ({ publicKey: pem } = await mailauthTools.getPublicKey('DKIM', name, this.#minBitLength, async () => records));
    } catch {
      return null;
    }
    const key = createPublicKey(pem);
    if (this.#keys.size >= this.#entries) this.#keys.delete(this.#keys.keys().next().value!);
    this.#keys.set(text, key);
    return key;
  }

  get size(): number {
    return this.#keys.size;
  }
}

/** What mailauth reads of a TXT answer: the first record's strings joined, without white space. */
function recordText(records: readonly unknown[]): string {
  const first = records[0];
  const strings = Array.isArray(first) ? first : first === undefined ? [] : [first];
  return strings.join('').replace(/\s+/g, '');
}
