/**
 * A real DNS server on loopback for tests: authoritative for the zones a test gives it, speaking
 * the protocol over UDP and TCP on one port (dns-packet for the wire format, node:dgram and
 * node:net for the transport). It serves A, AAAA, TXT, MX and PTR records (the DNS lists; SPF,
 * DKIM and DMARC records), answers SOA for each zone's apex, puts the zone's SOA in the authority
 * section of negative answers (RFC 2308), and can be told to fail a name: SERVFAIL, REFUSED, or
 * never answering at all. It counts every question it is asked, so a test can prove a cache.
 *
 * UDP answers larger than the client's EDNS buffer (512 bytes without EDNS) are sent truncated
 * (TC), and the client asks again over TCP, as a 2048-bit DKIM key's TXT record needs.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import type { ExecutionContext } from 'ava';
import dnsPacket, { type Answer, type DecodedPacket, type Question } from 'dns-packet';

export interface DnsRecords {
  readonly A?: readonly string[];
  readonly AAAA?: readonly string[];
  /** Each record is its strings (a TXT record may hold several). */
  readonly TXT?: readonly (readonly string[])[];
  readonly MX?: readonly { readonly exchange: string; readonly preference: number }[];
  /** Host names of a reverse name (`7.113.0.203.in-addr.arpa`). */
  readonly PTR?: readonly string[];
  /** TTL of this name's records, in seconds (default 300). */
  readonly ttl?: number;
  /** Answer every question for this name with this failure instead. */
  readonly fail?: 'SERVFAIL' | 'REFUSED';
  /** Never answer questions for this name (a black-holed query: the client times out). */
  readonly silent?: boolean;
}

export interface DnsZone {
  /** The zone's apex, e.g. `zen.test`. */
  readonly name: string;
  /** SOA MINIMUM: how long a negative answer may be cached (RFC 2308; default 60). */
  readonly negativeTtl?: number;
  /** Names (relative to nothing: full names, lower case) and their records. */
  readonly records?: Readonly<Record<string, DnsRecords>>;
}

export interface DnsQuestionSeen {
  readonly name: string;
  readonly type: string;
  readonly transport: 'udp' | 'tcp';
}

export interface TestDnsServer {
  readonly host: string;
  readonly port: number;
  /** `127.0.0.1:PORT`, as NIMBUS_DNS_SERVERS takes it. */
  readonly address: string;
  /** Every question asked so far, in order. */
  readonly questions: readonly DnsQuestionSeen[];
  /** Questions for `name` (any type unless given). */
  asked(name: string, type?: string): number;
  /** Adds or replaces a name's records (in the zone it belongs to). */
  set(name: string, records: DnsRecords): void;
  stop(): Promise<void>;
}

const DEFAULT_TTL = 300;
const DEFAULT_NEGATIVE_TTL = 60;
/** RFC 1035 4.2.1: the UDP limit without EDNS. */
const CLASSIC_UDP_LIMIT = 512;
const RCODES = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

/** Starts the server on a free loopback port (UDP and TCP both), stopped at the test's teardown. */
export async function startDnsServer(t: ExecutionContext | null, zones: readonly DnsZone[]): Promise<TestDnsServer> {
  const records = new Map<string, DnsRecords>();
  for (const zone of zones) for (const [name, set] of Object.entries(zone.records ?? {})) records.set(name.toLowerCase(), checked(name, set));
  const questions: DnsQuestionSeen[] = [];
  const answer = (query: DecodedPacket, transport: 'udp' | 'tcp'): Buffer | null => respond(query, transport, zones, records, questions);
  const { udp, tcp, port } = await bindBoth(answer);
  const sockets = new Set<Socket>();
  tcp.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  let stopped: Promise<void> | null = null;
  const server: TestDnsServer = {
    host: '127.0.0.1',
    port,
    address: `127.0.0.1:${port}`,
    questions,
    asked: (name, type) => questions.filter((q) => q.name === name.toLowerCase() && (type === undefined || q.type === type)).length,
    set: (name, set) => void records.set(name.toLowerCase(), checked(name, set)),
    stop: () =>
      (stopped ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        udp.close(() => tcp.close(() => resolve()));
      })),
  };
  t?.teardown(() => server.stop());
  return server;
}

/** RFC 1035 3.3: a TXT string is at most 255 bytes (a longer value is split into several, as DKIM keys are). */
function checked(name: string, set: DnsRecords): DnsRecords {
  const long = set.TXT?.flat().find((text) => Buffer.byteLength(text) > 255);
  if (long !== undefined) throw new Error(`TXT record of ${name}: a string of ${Buffer.byteLength(long)} bytes; split it into strings of at most 255`);
  return set;
}

/** UDP on port 0, then TCP on the same port; tried again when another process holds that TCP port. */
async function bindBoth(answer: (query: DecodedPacket, transport: 'udp' | 'tcp') => Buffer | null): Promise<{ udp: UdpSocket; tcp: Server; port: number }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(0, '127.0.0.1', () => resolve());
    });
    const port = udp.address().port;
    udp.on('message', (message: Buffer, peer: RemoteInfo) => {
      const query = decode(message);
      const reply = query && answer(query, 'udp');
      if (reply) udp.send(reply, peer.port, peer.address);
    });
    const tcp = createServer((socket) => serveTcp(socket, answer));
    const listening = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (listening) return { udp, tcp, port };
    await new Promise<void>((resolve) => udp.close(() => resolve()));
  }
  throw new Error('no loopback port free for both UDP and TCP');
}

/** RFC 1035 4.2.2: over TCP each message is preceded by its length in two bytes. */
function serveTcp(socket: Socket, answer: (query: DecodedPacket, transport: 'udp' | 'tcp') => Buffer | null): void {
  let buffered = Buffer.alloc(0);
  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
      const length = buffered.readUInt16BE(0);
      const query = decode(buffered.subarray(2, 2 + length));
      buffered = buffered.subarray(2 + length);
      const reply = query && answer(query, 'tcp');
      if (reply) {
        const framed = Buffer.alloc(2 + reply.length);
        framed.writeUInt16BE(reply.length, 0);
        reply.copy(framed, 2);
        socket.write(framed);
      }
    }
  });
}

function decode(message: Buffer): DecodedPacket | null {
  try {
    return dnsPacket.decode(message);
  } catch {
    return null;
  }
}

function respond(query: DecodedPacket, transport: 'udp' | 'tcp', zones: readonly DnsZone[], records: ReadonlyMap<string, DnsRecords>, seen: DnsQuestionSeen[]): Buffer | null {
  const question = query.questions?.[0];
  if (!question) return null;
  const name = question.name.toLowerCase().replace(/\.$/, '');
  seen.push({ name, type: question.type, transport });
  const zone = zones.find((candidate) => name === candidate.name || name.endsWith(`.${candidate.name}`));
  const set = records.get(name);
  if (set?.silent) return null;
  const reply = (rcode: number, answers: Answer[], authorities: Answer[] = []): Buffer => {
    const flags = dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_AVAILABLE | (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0) | rcode;
    const packet = { type: 'response' as const, id: query.id ?? 0, flags, questions: [question], answers, authorities };
    const encoded = dnsPacket.encode(packet);
    if (transport === 'tcp' || encoded.length <= udpLimit(query)) return encoded;
    return dnsPacket.encode({ ...packet, flags: flags | dnsPacket.TRUNCATED_RESPONSE, answers: [], authorities: [] });
  };
  if (!zone) return reply(RCODES.REFUSED, []);
  if (set?.fail) return reply(RCODES[set.fail], []);
  const soa = soaRecord(zone);
  if (question.type === 'SOA' && name === zone.name) return reply(RCODES.NOERROR, [soa]);
  if (!set) return reply(RCODES.NXDOMAIN, [], [soa]);
  const answers = answersFor(question, set);
  return answers.length > 0 ? reply(RCODES.NOERROR, answers) : reply(RCODES.NOERROR, [], [soa]);
}

function answersFor(question: Question, set: DnsRecords): Answer[] {
  const ttl = set.ttl ?? DEFAULT_TTL;
  const name = question.name;
  if (question.type === 'A') return (set.A ?? []).map((data) => ({ type: 'A', name, ttl, data }));
  if (question.type === 'AAAA') return (set.AAAA ?? []).map((data) => ({ type: 'AAAA', name, ttl, data }));
  if (question.type === 'TXT') return (set.TXT ?? []).map((strings) => ({ type: 'TXT', name, ttl, data: [...strings] }));
  if (question.type === 'MX') return (set.MX ?? []).map((data) => ({ type: 'MX', name, ttl, data: { ...data } }));
  if (question.type === 'PTR') return (set.PTR ?? []).map((data) => ({ type: 'PTR', name, ttl, data }));
  return [];
}

function soaRecord(zone: DnsZone): Answer {
  const minimum = zone.negativeTtl ?? DEFAULT_NEGATIVE_TTL;
  return {
    type: 'SOA',
    name: zone.name,
    ttl: minimum,
    data: { mname: `ns.${zone.name}`, rname: `hostmaster.${zone.name}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum },
  };
}

/** The client's EDNS buffer size (RFC 6891), or 512 without EDNS. */
function udpLimit(query: DecodedPacket): number {
  const opt = query.additionals?.find((record) => record.type === 'OPT') as { udpPayloadSize?: number } | undefined;
  return Math.max(CLASSIC_UDP_LIMIT, opt?.udpPayloadSize ?? CLASSIC_UDP_LIMIT);
}
