import test from 'ava';
import { isoTime } from '../src/reputation/iso-time.js';

/** A fixed-seed generator, so a failure names a value that can be replayed. */
function random(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1_664_525) + 1_013_904_223) >>> 0;
    return x / 2 ** 32;
  };
}

test('lookup timestamps read exactly as Date#toISOString on 200,000 random instants from 1970 to 9999', (t) => {
  const next = random(7);
  const end = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
  let differing = 0;
  let example = '';
  for (let i = 0; i < 200_000; i++) {
    const ms = Math.floor(next() * end);
    if (isoTime(ms) !== new Date(ms).toISOString()) {
      differing++;
      example ||= `${ms}: ${isoTime(ms)} vs ${new Date(ms).toISOString()}`;
    }
  }
  t.is(differing, 0, example);
});

test('lookup timestamps read as Date#toISOString at the edges: leap days, year and century ends, and the years Date writes with six digits', (t) => {
  const instants = [
    0, 1, 999, 1000, Date.UTC(1972, 1, 29, 12), Date.UTC(2000, 1, 29), Date.UTC(2100, 1, 28, 23, 59, 59, 999), Date.UTC(2100, 2, 1),
    Date.UTC(2026, 11, 31, 23, 59, 59, 999), Date.UTC(2027, 0, 1), Date.UTC(9999, 11, 31, 23, 59, 59, 999), Date.UTC(10000, 0, 1),
    -1, Date.UTC(1969, 11, 31), Date.UTC(-1, 0, 1), 1_700_000_000_000.5,
  ];
  for (const ms of instants) t.is(isoTime(ms), new Date(ms).toISOString(), String(ms));
});
