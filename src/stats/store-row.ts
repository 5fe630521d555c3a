/**
 * A statistics record as the rows the store writes (`stats` and `outbox`), built where the
 * record is made. The gateway's thread hands the writer thread (record-writer.ts) this flat
 * tuple of strings and numbers: structured-cloning the record's object graph (every fingerprint
 * an object) cost ~4% of a milter worker's main thread (CPU profile, `npm run bench -- milter`),
 * and the writer thread then rebuilt and serialised the same objects again.
 */
import { randomUUID } from 'node:crypto';
import type { StatsInput } from './types.js';

/** The values of one record's `stats` and `outbox` rows, in the order store.ts binds them. */
export type StatsRow = readonly [
  id: string,
  time: number,
  clientIp: string,
  helo: string | null,
  verdict: string,
  score: number,
  action: string,
  size: number,
  /** JSON of the next hop's reply, or null. */
  nextHop: string | null,
  /** JSON of the fingerprints with their local labels (`stats.fingerprints`). */
  fingerprints: string,
  gatheredOff: 0 | 1,
  /** JSON of the LocalRecord to upload (`outbox.record`). */
  outbox: string,
];

/**
 * A record id: a random UUID whose first 48 bits are the time in ms (the layout of RFC 9562's
 * version 7). `stats.id` is the primary key of a table that only grows at its end; with fully
 * random ids each insert landed on a random page of its index, one more page per record for the
 * WAL and the fsync that follows. 74 random bits remain, so ids stay unguessable and distinct
 * across the gateway's processes.
 */
export function recordId(time: number): string {
  const random = randomUUID();
  const stamp = Math.max(0, Math.min(time, 0xffff_ffff_ffff)).toString(16).padStart(12, '0');
  return `${stamp.slice(0, 8)}-${stamp.slice(8)}-7${random.slice(15)}`;
}

/**
 * The rows of one record. Same JSON as the store has always written, byte for byte (as
 * JSON.stringify wrote it from objects; test/stats-store.test.ts compares the two): written as
 * text here, so each fingerprint's text is quoted once for both rows and no object is built per
 * fingerprint twice (16 → 7 µs per 5 KB message, micro-benchmark).
 */
export function toStatsRow(input: StatsInput, gatheredOff: boolean, now = Date.now()): StatsRow {
  const time = input.time?.getTime() ?? now;
  const id = recordId(time);
  const { labelled, plain } = fingerprintsJson(input.fingerprints);
  // The outbox copy has no labels: a label can be the IP in the clear or a file name; and it
  // has the verdict and score without the public DNS lists' points (a listing stays here).
  // Keys in LocalRecord's order; every value is a string or a number, so none is left out.
  let outbox =
    `{"id":${JSON.stringify(id)},"time":${JSON.stringify(time)},"fingerprints":${plain},` +
    `"verdict":${JSON.stringify(input.shared?.verdict ?? input.verdict)},"score":${JSON.stringify(input.shared?.score ?? input.score)},` +
    `"action":${JSON.stringify(input.action)},"size":${JSON.stringify(input.size)}`;
  if (input.urls) outbox += `,"urls":${JSON.stringify([...input.urls])}`;
  if (input.attachments) outbox += `,"attachments":${JSON.stringify(input.attachments.map((a) => ({ sha256: a.sha256, type: a.type, size: a.size })))}`;
  outbox += '}';
  return [
    id,
    time,
    input.clientIp,
    input.helo ?? null,
    input.verdict,
    input.score,
    input.action,
    input.size,
    input.nextHop ? JSON.stringify(input.nextHop) : null,
    labelled,
    gatheredOff ? 1 : 0,
    outbox,
  ];
}

/** `[{"text":…,"label":…}…]` (the label only when there is one) and `[{"text":…}…]`. */
function fingerprintsJson(fingerprints: StatsInput['fingerprints']): { labelled: string; plain: string } {
  let labelled = '[';
  let plain = '[';
  for (let i = 0; i < fingerprints.length; i++) {
    const { text, label } = fingerprints[i]!;
    const opened = `${i === 0 ? '' : ','}{"text":${JSON.stringify(text)}`;
    labelled += label === undefined ? `${opened}}` : `${opened},"label":${JSON.stringify(label)}}`;
    plain += `${opened}}`;
  }
  return { labelled: `${labelled}]`, plain: `${plain}]` };
}
