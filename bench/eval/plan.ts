/**
 * The replay plan: which copy of which campaign goes to which gateway, from which IP, to which
 * recipient, and when; where ham is interleaved; which copies land in spam traps; which
 * deliveries users will report. Everything is drawn from named seeded streams, so one seed gives
 * one plan, and the participating and the baseline networks replay exactly the same mail.
 *
 * Time is virtual: campaign i starts at i (campaigns in the order of their Date header), its
 * copies follow at exponential gaps (mean COPY_GAP), so about COPY_GAP × copies campaigns run at
 * once, as on a real network; ham arrives at random times over the whole span.
 */
import type { CorpusMessage } from './corpus.js';
import { changeAddress, handoffOf, type Handoff, type IpChange } from './received.js';
import { rngFor, type Rng } from './rng.js';
import type { Recipient } from './variants.js';

export interface PlanOptions {
  readonly seed: string | number;
  readonly gateways: number;
  readonly copies: number;
  /** At most this many campaigns, spread evenly over the corpus's time order; ham scaled alike. */
  readonly limit: number | null;
  /** The first `trapCopies` copies of every campaign go to a spam-trap address. */
  readonly trapCopies: number;
  /** Share of delivered (unflagged) spam that users report with `nimbus report --spam`. */
  readonly reportRate: number;
  /** Share of ham reported as spam by mistake (at least one message when there is ham). */
  readonly hamMistakeRate: number;
}

export const DEFAULT_PLAN: Omit<PlanOptions, 'seed'> = {
  gateways: 5,
  copies: 8,
  limit: null,
  trapCopies: 1,
  reportRate: 0.1,
  hamMistakeRate: 0.01,
};

/** Mean gap between two copies of a campaign, in campaign starts. */
export const COPY_GAP = 3;
/** A ham message reported by mistake arrives again this much later (the next issue of a newsletter). */
export const RESEND_DELAY = 20;
/** How a copy's sending IP differs from the campaign's: botnets and snowshoe ranges. */
export const IP_CHANGES: readonly { change: IpChange; weight: number }[] = [
  { change: 'same', weight: 0.3 },
  { change: 'same-net', weight: 0.35 },
  { change: 'other-net', weight: 0.35 },
];

export interface GatewayIdentity {
  readonly index: number;
  readonly domain: string;
  readonly traps: readonly string[];
}

export interface Campaign {
  readonly index: number;
  readonly message: CorpusMessage;
  readonly handoff: Handoff;
}

interface EventBase {
  /** Position in the replay order. */
  seq: number;
  readonly time: number;
  readonly gateway: number;
  readonly recipient: Recipient;
  readonly ip: string;
  readonly helo: string | null;
}

export interface SpamEvent extends EventBase {
  readonly kind: 'spam';
  readonly campaign: number;
  readonly copy: number;
  readonly trap: boolean;
  readonly ipChange: IpChange;
  /** The user reports this copy if it is delivered unflagged. */
  readonly reported: boolean;
}

export interface HamEvent extends EventBase {
  readonly kind: 'ham';
  readonly message: CorpusMessage;
  /** Reported as spam by mistake once delivered. */
  readonly mistake: boolean;
  /** This delivery is the same message again, after a mistaken report of an earlier delivery. */
  readonly resend: boolean;
}

export type PlanEvent = SpamEvent | HamEvent;

export interface Plan {
  readonly options: PlanOptions;
  readonly gateways: readonly GatewayIdentity[];
  readonly campaigns: readonly Campaign[];
  readonly ham: readonly CorpusMessage[];
  readonly events: readonly PlanEvent[];
}

const FIRST_NAMES = ['Anna', 'Ben', 'Carla', 'David', 'Elena', 'Farid', 'Grace', 'Hugo', 'Ines', 'Jonas', 'Kenji', 'Lena', 'Marco', 'Nadia',
  'Oscar', 'Priya', 'Quentin', 'Rosa', 'Samir', 'Tina', 'Ulrich', 'Vera', 'Wei', 'Xenia', 'Yusuf', 'Zoe', 'Maria', 'Peter', 'Sofia', 'Tomas'];
const LAST_NAMES = ['Adams', 'Berger', 'Costa', 'Dubois', 'Eriksson', 'Fischer', 'Garcia', 'Horvat', 'Ivanova', 'Jensen', 'Kowalski', 'Larsen',
  'Moreau', 'Novak', 'Okafor', 'Petrov', 'Quinn', 'Rossi', 'Schmidt', 'Tanaka', 'Urban', 'Varga', 'Walsh', 'Young', 'Zimmer', 'Silva', 'Murphy'];

/** Message order: by Date, undated ones by name, name breaking ties (a stable, total order). */
export function timeOrder(messages: readonly CorpusMessage[]): CorpusMessage[] {
  return [...messages].sort((a, b) => (a.date ?? Infinity) - (b.date ?? Infinity) || (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

/** `count` items spread evenly over `items` (all of them when count >= length). */
export function spread<T>(items: readonly T[], count: number): T[] {
  if (count >= items.length) return [...items];
  return Array.from({ length: count }, (_, i) => items[Math.floor((i * items.length) / count)]!);
}

export function gatewayIdentities(count: number, seed: string | number): GatewayIdentity[] {
  return Array.from({ length: count }, (_, index) => {
    const rng = rngFor(seed, 'traps', index);
    const domain = `org${index + 1}.example`;
    // Trap addresses look like abandoned mailboxes, not like "trap@": spammers avoid obvious ones.
    const traps = [0, 1].map(() => `${rng.pick(FIRST_NAMES).toLowerCase()}${rng.int(60, 99)}@${domain}`);
    return { index, domain, traps: [...new Set(traps)] };
  });
}

function recipient(rng: Rng, domain: string, seq: number): Recipient {
  const first = rng.pick(FIRST_NAMES);
  const last = rng.pick(LAST_NAMES);
  // The sequence number makes every envelope recipient unique, so the sink can tell copies apart.
  return { name: `${first} ${last}`, address: `${first}.${last}.${seq}@${domain}`.toLowerCase() };
}

function ipChange(rng: Rng): IpChange {
  let draw = rng.next();
  for (const { change, weight } of IP_CHANGES) {
    if (draw < weight) return change;
    draw -= weight;
  }
  return 'other-net';
}

export function buildPlan(spamMessages: readonly CorpusMessage[], hamMessages: readonly CorpusMessage[], options: PlanOptions): Plan {
  if (options.gateways < 1 || options.copies < 1) throw new RangeError('at least one gateway and one copy');
  const spamOrdered = timeOrder(spamMessages);
  const campaignCount = options.limit === null ? spamOrdered.length : Math.min(options.limit, spamOrdered.length);
  const chosen = spread(spamOrdered, campaignCount);
  const hamCount = options.limit === null ? hamMessages.length : Math.round((hamMessages.length * campaignCount) / Math.max(1, spamOrdered.length));
  const ham = spread(timeOrder(hamMessages), hamCount);
  const gateways = gatewayIdentities(options.gateways, options.seed);
  const campaigns: Campaign[] = chosen.map((message, index) => ({ index, message, handoff: handoffOf(message.raw) }));

  const events: PlanEvent[] = [];
  for (const campaign of campaigns) {
    const rng = rngFor(options.seed, 'campaign', campaign.message.file);
    let time = campaign.index;
    for (let copy = 0; copy < options.copies; copy++) {
      if (copy > 0) time += rng.exponential(COPY_GAP);
      const gateway = rng.int(0, options.gateways - 1);
      const trap = copy < options.trapCopies;
      const change: IpChange = copy === 0 ? 'same' : ipChange(rng);
      const ip = changeAddress(rng, campaign.handoff.ip, change);
      const to: Recipient = trap
        ? { name: 'Friend', address: rng.pick(gateways[gateway]!.traps) }
        : recipient(rng, gateways[gateway]!.domain, events.length);
      const reported = rng.chance(options.reportRate);
      events.push({ kind: 'spam', seq: -1, time, gateway, recipient: to, ip, helo: campaign.handoff.helo, campaign: campaign.index, copy, trap, ipChange: change, reported });
    }
  }

  const span = Math.max(1, ...events.map((event) => event.time));
  const hamRng = rngFor(options.seed, 'ham');
  const mistakes = new Set(hamRng.shuffled(ham.map((_, i) => i)).slice(0, ham.length === 0 || options.hamMistakeRate === 0 ? 0 : Math.max(1, Math.round(ham.length * options.hamMistakeRate))));
  const times = ham.map(() => hamRng.between(0, span)).sort((a, b) => a - b);
  ham.forEach((message, i) => {
    const handoff = handoffOf(message.raw);
    const gateway = hamRng.int(0, options.gateways - 1);
    const base = { kind: 'ham' as const, seq: -1, message, ip: handoff.ip, helo: handoff.helo };
    events.push({ ...base, time: times[i]!, gateway, recipient: recipient(hamRng, gateways[gateway]!.domain, events.length), mistake: mistakes.has(i), resend: false });
    if (mistakes.has(i)) {
      // The same message again, to another organisation: one wrong report must not spread.
      const other = options.gateways > 1 ? (gateway + hamRng.int(1, options.gateways - 1)) % options.gateways : gateway;
      events.push({ ...base, time: times[i]! + RESEND_DELAY, gateway: other, recipient: recipient(hamRng, gateways[other]!.domain, events.length), mistake: false, resend: true });
    }
  });

  // Stable: equal times keep their creation order (copies of one campaign stay in order).
  const ordered = events.map((event, i) => ({ event, i })).sort((a, b) => a.event.time - b.event.time || a.i - b.i).map(({ event }) => event);
  ordered.forEach((event, seq) => {
    event.seq = seq;
  });
  return { options, gateways, campaigns, ham, events: ordered };
}
