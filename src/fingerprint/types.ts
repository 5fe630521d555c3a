import { FINGERPRINT_KINDS, type FingerprintKind } from '../config/types.js';

export type { FingerprintKind };

/**
 * A typed checksum. Its stable text form `kind:algorithm:value` (e.g. `image:dhash64:9f3c…`)
 * is what headers, logs, the API and the CLI use.
 */
export interface Fingerprint {
  readonly kind: FingerprintKind;
  readonly algorithm: string;
  readonly value: string;
  /** `kind:algorithm:value` */
  readonly text: string;
  /**
   * What a human reading local output needs to recognise it (the IP in the clear, a link
   * domain, a file name). Local only: never sent to a service.
   */
  readonly label?: string;
}

export function makeFingerprint(kind: FingerprintKind, algorithm: string, value: string, label?: string): Fingerprint {
  const text = `${kind}:${algorithm}:${value}`;
  return label === undefined ? { kind, algorithm, value, text } : { kind, algorithm, value, text, label };
}

/** Parses a text form; null when it is not `kind:algorithm:value` with a known kind. */
export function parseFingerprint(text: string): Fingerprint | null {
  const first = text.indexOf(':');
  const second = first < 0 ? -1 : text.indexOf(':', first + 1);
  if (second < 0) return null;
  const kind = text.slice(0, first);
  const algorithm = text.slice(first + 1, second);
  const value = text.slice(second + 1);
  if (!(FINGERPRINT_KINDS as readonly string[]).includes(kind)) return null;
  if (!/^[a-z0-9][a-z0-9_-]{0,31}$/.test(algorithm) || value === '' || value.length > 2048) return null;
  return makeFingerprint(kind as FingerprintKind, algorithm, value);
}
