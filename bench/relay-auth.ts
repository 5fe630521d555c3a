/**
 * `npm run bench -- relay --auth`: the relay with NIMBUS_AUTH_CHECKS=on, its resolver a DNS
 * server on loopback that answers at once (the tests' own, test/helpers/dns-server.ts), serving
 * the load's sender domain: an SPF record permitting the load's address, the DKIM key every
 * message of the mix is signed with, and a DMARC policy. So each message costs what a real one
 * does (SPF, one RSA verification and its body hash, DMARC), without the network's latency:
 * the figure is the checks' CPU, to compare with the same run without `--auth`.
 *
 * `--pairs=N` (with `--auth`) makes that comparison in one command, steadier than separate runs
 * on a shared machine: for each mix and session count, N pairs of Nimbus runs (Nimbus alone, as
 * `--only=nimbus`), one without the checks and one with them, both sent the same signed messages
 * (so only the checks differ), in the order off-on, on-off, off-on… (a drift of the machine's load
 * during the pairs then weighs on both sides alike). Each run is the relay bench's measurement (its
 * warm-up, then the measured load; `--messages=M` lengthens it), and its figure is the CPU time of
 * the gateway's process tree per message. It prints every run, the lowest, median and highest
 * figure of each side, each pair's ratio (on / off) and the median of those ratios, the figure to
 * compare with issue 22's target (within 25%: a ratio of at most 1.25).
 */
import { generateKeyPairSync } from 'node:crypto';
import { dkimSign } from 'mailauth';
import { startDnsServer, type TestDnsServer } from '../test/helpers/dns-server.js';
import { median } from './eval/figures.js';

export interface AuthBench {
  /** The gateway's environment for the checks. */
  readonly env: Record<string, string>;
  /** `text` (LF line ends, as the mix's files are) with a DKIM-Signature of the sender domain on top. */
  sign(text: string): Promise<string>;
  stop(): Promise<void>;
}

const SELECTOR = 'bench';

/** One measured run, as the relay bench gives it (the fields the comparison reads). */
export interface PairRun {
  readonly cpu_ms_per_msg: number | null;
  readonly mps: number;
  readonly messages: number;
  readonly probes: number;
  readonly loadavg: readonly number[];
}

export interface PairedComparison {
  readonly pairs: number;
  /** Every run, in the order run: `checks` says which side it was. */
  readonly runs: readonly (PairRun & { readonly pair: number; readonly checks: boolean })[];
  readonly off: Spread;
  readonly on: Spread;
  /** Each pair's CPU ms/msg with the checks over without them. */
  readonly ratios: readonly number[];
  readonly ratio: Spread;
}

export interface Spread { readonly min: number; readonly median: number; readonly max: number }

/**
 * `pairs` pairs of runs, `measure(false)` and `measure(true)`, in the order off-on, on-off, …;
 * `say` hears each run as it ends.
 */
export async function comparePairs(pairs: number, measure: (checks: boolean) => Promise<PairRun>, say: (line: string) => void): Promise<PairedComparison> {
  const runs: (PairRun & { pair: number; checks: boolean })[] = [];
  const ratios: number[] = [];
  for (let pair = 1; pair <= pairs; pair += 1) {
    const order = pair % 2 === 1 ? [false, true] : [true, false];
    const figure: Record<string, number> = {};
    for (const checks of order) {
      const run = { ...(await measure(checks)), pair, checks };
      runs.push(run);
      say(`  pair ${pair}, checks ${checks ? 'on' : 'off'}: ${JSON.stringify(run)}`);
      figure[String(checks)] = run.cpu_ms_per_msg ?? Number.NaN;
    }
    ratios.push(Number((figure.true! / figure.false!).toFixed(3)));
  }
  const side = (checks: boolean): Spread => spread(runs.filter((run) => run.checks === checks).map((run) => run.cpu_ms_per_msg ?? Number.NaN));
  return { pairs, runs, off: side(false), on: side(true), ratios, ratio: spread(ratios) };
}

function spread(values: readonly number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  return { min: sorted[0] ?? Number.NaN, median: Number(median(sorted).toFixed(3)), max: sorted[sorted.length - 1] ?? Number.NaN };
}

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
