/**
 * The statistical classifier (docs/design/bayes.md): from the learnt counts of a message's tokens
 * to the probability that it is spam, the way SpamAssassin's and SpamBayes' classifiers do it.
 *
 * Each token's spam probability is Graham's ratio of its spam and ham frequencies, pulled towards
 * 1/2 by Robinson's prior (strength S = 1, value X = 1/2) so that a token seen in few messages
 * says little. Tokens seen in fewer than MIN_TOKEN_MESSAGES learnt messages, and those within
 * MIN_STRENGTH of 1/2, are left out; of the rest the MAX_INTERESTING farthest from 1/2 are
 * combined with Fisher's method (Robinson's chi-square): one chi-square test that the tokens
 * are spammy, one that they are hammy, the probability half-way between.
 */
import type { BayesStore, TokenCounts } from './store.js';

/** The classifier says nothing until this many spam and this many ham messages were learnt (sa-learn's minimum). */
export const MIN_LEARNT = 200;
export const MIN_TOKEN_MESSAGES = 3;
export const MIN_STRENGTH = 0.1;
export const MAX_INTERESTING = 150;
const PRIOR_STRENGTH = 1;
const PRIOR_VALUE = 0.5;

/** Robinson's f(w): a token's spam probability given its counts and the learnt totals. */
export function tokenProbability(counts: TokenCounts, totals: TokenCounts): number {
  const spamShare = counts.spam / totals.spam;
  const hamShare = counts.ham / totals.ham;
  const graham = spamShare / (spamShare + hamShare);
  const n = counts.spam + counts.ham;
  return (PRIOR_STRENGTH * PRIOR_VALUE + n * graham) / (PRIOR_STRENGTH + n);
}

/**
 * P(chi-square with `degrees` (even) degrees of freedom ≥ x), by its finite series. With at most
 * MAX_INTERESTING tokens (300 degrees) the terms stay in range where the answer is not ~0.
 */
export function chiSquareSurvival(x: number, degrees: number): number {
  const m = x / 2;
  let term = Math.exp(-m);
  let sum = term;
  for (let i = 1; i < degrees / 2; i++) {
    term *= m / i;
    sum += term;
  }
  return Math.min(sum, 1);
}

/** Fisher-combined probability of spam of a set of token probabilities; 0.5 with none. */
export function combine(probabilities: readonly number[]): number {
  if (probabilities.length === 0) return 0.5;
  let logHam = 0;
  let logSpam = 0;
  for (const p of probabilities) {
    logHam += Math.log(p);
    logSpam += Math.log1p(-p);
  }
  const degrees = 2 * probabilities.length;
  const spammy = 1 - chiSquareSurvival(-2 * logSpam, degrees);
  const hammy = 1 - chiSquareSurvival(-2 * logHam, degrees);
  return (1 + spammy - hammy) / 2;
}

/** The probability of spam of a message's tokens, given their counts and the learnt totals. */
export function spamProbability(tokens: readonly number[], counts: ReadonlyMap<number, TokenCounts>, totals: TokenCounts): number {
  const strengths: number[] = [];
  for (const token of tokens) {
    const c = counts.get(token);
    if (c === undefined || c.spam + c.ham < MIN_TOKEN_MESSAGES) continue;
    const p = tokenProbability(c, totals);
    if (Math.abs(p - 0.5) >= MIN_STRENGTH) strengths.push(p);
  }
  strengths.sort((a, b) => Math.abs(b - 0.5) - Math.abs(a - 0.5));
  return combine(strengths.slice(0, MAX_INTERESTING));
}

export class BayesClassifier {
  readonly #store: BayesStore;

  constructor(store: BayesStore) {
    this.#store = store;
  }

  /**
   * The learnt totals when enough of both labels were learnt for the probability to mean
   * something, else null. Read once per message: `nimbus learn` may add to them meanwhile.
   */
  learnt(): TokenCounts | null {
    const totals = this.#store.totals();
    return totals.spam >= MIN_LEARNT && totals.ham >= MIN_LEARNT ? totals : null;
  }

  /** The message's probability of spam, given the totals `learnt()` read for it. */
  classify(tokens: readonly number[], learnt: TokenCounts): number {
    return spamProbability(tokens, this.#store.counts(tokens), learnt);
  }
}

/** In `tests=` when the classifier is sure enough a message is spam. */
export const BAYES_SPAM_TEST = 'NIMBUS_BAYES_SPAM';
/**
 * From this probability on the classifier's points count (NIMBUS_WEIGHT_BAYES). SpamAssassin's
 * BAYES_99 band: in the day-one eval no newer ham reached it, 3 of 1479 reached 0.95.
 */
export const SPAM_PROBABILITY = 0.99;

/** The score part of a probability: the weight from SPAM_PROBABILITY on, else none. */
export function bayesPart(probability: number | null, weight: number): { readonly test: string; readonly points: number } | null {
  return probability !== null && probability >= SPAM_PROBABILITY && weight > 0 ? { test: BAYES_SPAM_TEST, points: weight } : null;
}
