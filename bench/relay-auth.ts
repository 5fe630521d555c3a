/**
 * `npm run bench -- relay --auth`: the relay with NIMBUS_AUTH_CHECKS=on, its resolver a DNS
 * server on loopback that answers at once (the tests' own, test/helpers/dns-server.ts), serving
 * the load's sender domain: an SPF record permitting the load's address, the DKIM key every
 * message of the mix is signed with, and a DMARC policy. So each message costs what a real one
 * does (SPF, one RSA verification and its body hash, DMARC), without the network's latency:
 * the figure is the checks' CPU, to compare with the same run without `--auth`.
 */
import { generateKeyPairSync } from 'node:crypto';
import { dkimSign } from 'mailauth';
import { startDnsServer, type TestDnsServer } from '../test/helpers/dns-server.js';

export interface AuthBench {
  /** The gateway's environment for the checks. */
  readonly env: Record<string, string>;
  /** `text` (LF line ends, as the mix's files are) with a DKIM-Signature of the sender domain on top. */
  sign(text: string): Promise<string>;
  stop(): Promise<void>;
}

const SELECTOR = 'bench';

export async function startAuthBench(domain: string): Promise<AuthBench> {
  // 2048 bits: what senders publish today, so the verification costs what it does in real traffic.
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;
  const dns: TestDnsServer = await startDnsServer(null, [
    {
      name: domain,
      records: {
        [domain]: { TXT: [['v=spf1 ip4:127.0.0.0/8 -all']] },
        [`${SELECTOR}._domainkey.${domain}`]: { TXT: [key.match(/.{1,255}/g) ?? []] },
        [`_dmarc.${domain}`]: { TXT: [['v=DMARC1; p=reject']] },
      },
    },
  ]);
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return {
    env: { NIMBUS_AUTH_CHECKS: 'on', NIMBUS_DNS_SERVERS: dns.address, NIMBUS_HOSTNAME: 'mx.bench.test' },
    async sign(text) {
      // Signed as sent (CRLF), then written back with LF: smtp-source sends each line with CRLF.
      const wire = Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'latin1');
      const signature = { signingDomain: domain, selector: SELECTOR, privateKey: pem, canonicalization: 'relaxed/relaxed' };
      const signed = await dkimSign(wire, { ...signature, signatureData: [signature] });
      if (signed.errors.length > 0) throw new Error(`bench relay --auth: signing failed: ${JSON.stringify(signed.errors)}`);
      return `${signed.signatures}${text}`.replace(/\r\n/g, '\n');
    },
    stop: () => dns.stop(),
  };
}
