/**
 * Types of the parts of mailauth (4.13.3, pinned in package.json) and of the address parser it
 * uses that the DKIM fast path calls (dkim-fast-path.ts). mailauth ships types for its public
 * functions only; these modules are its own building blocks, called as it calls them, so the fast
 * path parses, canonicalises and formats exactly as mailauth's verifier does.
 * test/dkim-fast-path.test.ts compares the two on every kind of message it can make.
 */
declare module 'mailauth/lib/tools.js' {
  export interface HeaderRow {
    /** Lower case; null for a line without a name. */
    readonly key: string | null;
    readonly casedKey?: string;
    /** The whole field, name and folded lines included, as bytes. */
    readonly line: Buffer;
  }
  export interface ParsedHeaders {
    readonly parsed: HeaderRow[];
    readonly original: Buffer;
  }
  export interface DkimTag {
    readonly value: string;
  }
  export interface ParsedSignature {
    readonly parsed?: Partial<Record<string, DkimTag>>;
    /** The field as mailauth keeps it for header canonicalisation: what it was given to parse. */
    readonly original: Buffer | string;
  }
  export interface SigningHeaderLines {
    readonly keys: string;
    readonly headers: HeaderRow[];
  }
  export interface PublicKeyAnswer {
    /** PEM: PKCS#1 for an RSA key, SPKI for an Ed25519 one. */
    readonly publicKey: string | Buffer;
    readonly rr: string;
    readonly modulusLength?: number;
  }
  const tools: {
    parseHeaders(header: Buffer): ParsedHeaders;
    parseDkimHeaders(line: Buffer | string): ParsedSignature;
    getSigningHeaderLines(headers: HeaderRow[], fieldNames: string | undefined, verify: true): SigningHeaderLines;
    getPublicKey(type: 'DKIM', name: string, minBitLength: number, resolver: (name: string, rrtype: string) => Promise<unknown>): Promise<PublicKeyAnswer>;
    formatAuthHeaderRow(method: string, status: object): string;
    getAlignment(fromDomain: string, domains: string[]): { domain: string } | false;
  };
  export default tools;
}

declare module 'mailauth/lib/dkim/header/index.js' {
  import type { HeaderRow } from 'mailauth/lib/tools.js';
  const header: {
    generateCanonicalizedHeader(
      type: 'DKIM',
      lines: { keys: string; headers: HeaderRow[] },
      options: { signatureHeaderLine: Buffer | string; canonicalization: string; instance: false },
    ): { canonicalizedHeader: Buffer };
  };
  export default header;
}

declare module 'mailauth/lib/dkim/body/index.js' {
  interface BodyHash {
    update(chunk: Buffer | null, final?: boolean): void;
    digest(encoding: 'base64'): string;
  }
  const body: {
    /** The body hash of one canonicalisation and hash algorithm; `maxBodyLength` '' for the whole body. */
    dkimBody(canonicalization: string, hashAlgorithm: string, maxBodyLength: number | ''): BodyHash;
  };
  export default body;
}

declare module 'nodemailer/lib/addressparser/index.js' {
  interface ParsedAddress {
    readonly name: string;
    readonly address?: string;
    readonly group?: ParsedAddress[];
  }
  function addressparser(text: string): ParsedAddress[];
  export default addressparser;
}
