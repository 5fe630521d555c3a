/**
 * DKIM keys, signatures and ARC seals for tests: keys generated in the test (node:crypto), their
 * public halves as the DKIM TXT records the test DNS server publishes, and messages signed and
 * sealed with mailauth's own signer, as a real sender's MTA would.
 */
import { generateKeyPairSync } from 'node:crypto';
import { dkimSign, sealMessage } from 'mailauth';
import type { DnsRecords } from './dns-server.js';

export interface DkimKey {
  readonly domain: string;
  readonly selector: string;
  readonly privateKey: string;
  /** `selector._domainkey.domain` */
  readonly name: string;
  /** The TXT record publishing the public key (RFC 6376 3.6.1), in strings of at most 255 bytes. */
  readonly record: DnsRecords;
}

/** An RSA key of 1024 bits: the smallest Nimbus trusts (RFC 8301), quick to make. */
export function dkimKey(domain: string, selector = 's1'): DkimKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const der = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const text = `v=DKIM1; k=rsa; p=${der}`;
  const strings = text.match(/.{1,255}/g) ?? [];
  return { domain, selector, privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), name: `${selector}._domainkey.${domain}`, record: { TXT: [strings] } };
}

/** `message` with a DKIM-Signature by `key` on top. */
export async function dkimSigned(message: Buffer, key: DkimKey, canonicalization = 'relaxed/relaxed'): Promise<Buffer> {
  const signature = { signingDomain: key.domain, selector: key.selector, privateKey: key.privateKey, canonicalization };
  const signed = await dkimSign(message, { ...signature, signatureData: [signature] });
  if (signed.errors.length > 0) throw new Error(`dkimSign: ${JSON.stringify(signed.errors)}`);
  return Buffer.concat([Buffer.from(signed.signatures), message]);
}

/** `message` with an ARC set by `key` on top, as a forwarder that checked it (`authResults`) would add. */
export async function arcSealed(message: Buffer, key: DkimKey, authResults: string, cv: 'none' | 'pass' | 'fail' = 'none'): Promise<Buffer> {
  const headers = await sealMessage(message, { signingDomain: key.domain, selector: key.selector, privateKey: key.privateKey, authResults, cv } as Parameters<typeof sealMessage>[1]);
  return Buffer.concat([headers, message]);
}

/** A plain text message, CRLF, From the given address. */
export function plainMessage(from: string, subject: string, text: string): Buffer {
  return Buffer.from(
    [`From: ${from}`, 'To: bob@example.com', `Subject: ${subject}`, 'Date: Mon, 07 Dec 2026 10:00:00 +0000', `Message-ID: <${subject.replace(/\W+/g, '.')}@nimbus.test>`, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', text, ''].join('\r\n'),
  );
}
