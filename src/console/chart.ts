/**
 * Messages per hour (or day) by verdict as a stacked bar chart in SVG, drawn on the server: no
 * chart library, no script in the page (the CSP forbids it), and the numbers are in the markup
 * (each bar's title), so a test or a screen reader can read what the chart shows.
 */
import { html, type Html } from './html.js';

export const VERDICT_ORDER = ['spam', 'bulk', 'unknown', 'ham'] as const;

export interface Bucket {
  readonly start: number;
  readonly counts: Readonly<Record<string, number>>;
}

const WIDTH = 720;
const HEIGHT = 160;
const AXIS = 20;

export function barChart(title: string, buckets: readonly Bucket[], label: (start: number) => string): Html {
  const max = Math.max(1, ...buckets.map((bucket) => VERDICT_ORDER.reduce((sum, verdict) => sum + (bucket.counts[verdict] ?? 0), 0)));
  const slot = WIDTH / Math.max(1, buckets.length);
  const bars = buckets.map((bucket, index) => {
    let top = HEIGHT;
    const total = VERDICT_ORDER.reduce((sum, verdict) => sum + (bucket.counts[verdict] ?? 0), 0);
    const parts = VERDICT_ORDER.filter((verdict) => (bucket.counts[verdict] ?? 0) > 0).map((verdict) => {
      const h = ((bucket.counts[verdict] ?? 0) / max) * HEIGHT;
      top -= h;
      return html`<rect class="v-${verdict}" x="${(index * slot + 1).toFixed(1)}" y="${top.toFixed(1)}" width="${Math.max(1, slot - 2).toFixed(1)}" height="${h.toFixed(1)}"></rect>`;
    });
    const detail = VERDICT_ORDER.map((verdict) => `${verdict} ${bucket.counts[verdict] ?? 0}`).join(', ');
    return html`<g class="bar" data-start="${bucket.start}" data-total="${total}"><title>${label(bucket.start)}: ${total} (${detail})</title>${parts}</g>`;
  });
  const every = Math.max(1, Math.ceil(buckets.length / 8));
  const ticks = buckets
    .map((bucket, index) => (index % every === 0 ? html`<text x="${(index * slot).toFixed(1)}" y="${HEIGHT + 14}">${label(bucket.start)}</text>` : null))
    .filter((tick) => tick !== null);
  return html`<figure class="chart"><figcaption>${title} (max ${max})</figcaption><svg viewBox="0 0 ${WIDTH} ${HEIGHT + AXIS}" role="img" aria-label="${title}">${bars}${ticks}</svg></figure>`;
}
