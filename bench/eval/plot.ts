/**
 * The plot of issue 8: detection against the number of copies already seen, one line for the
 * participating network and one for the baseline (local learning only), drawn as SVG and turned
 * into PNG by sharp (librsvg). No plotting library: two polylines, axes and a legend.
 */
import sharp from 'sharp';

export interface Series {
  readonly label: string;
  readonly colour: string;
  /** Dashed, drawn under the solid lines: so a line equal to another stays visible. */
  readonly dashed?: boolean;
  /** False: drawn, but not in the legend (the subtitle says what it is). */
  readonly legend?: boolean;
  /** [x, detection %]: copies seen, or (day one) the tenth of the replayed mail */
  readonly points: readonly (readonly [number, number])[];
}

const WIDTH = 800;
const HEIGHT = 500;
const MARGIN = { left: 70, right: 30, top: 96, bottom: 60 };

const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export interface PlotOptions {
  readonly title: string;
  readonly subtitle: string;
  readonly target?: { from: number; rate: number };
  /** Defaults: the eval's axis (copies already sent), a tick at every integer, legend entries 300 px apart. */
  readonly xLabel?: string;
  readonly yLabel?: string;
  readonly xStep?: number;
  readonly legendWidth?: number;
}

export function detectionSvg(series: readonly Series[], options: PlotOptions): string {
  const xs = series.flatMap((s) => s.points.map(([x]) => x));
  const xMin = Math.min(options.xLabel === undefined ? 1 : 0, ...xs);
  const xMax = Math.max(xMin + 1, ...xs);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (v: number): number => MARGIN.left + ((v - xMin) / (xMax - xMin)) * plotW;
  const y = (v: number): number => MARGIN.top + plotH - (Math.max(0, Math.min(100, v)) / 100) * plotH;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="DejaVu Sans, sans-serif">`);
  parts.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`);
  parts.push(`<text x="${WIDTH / 2}" y="26" font-size="18" text-anchor="middle" font-weight="bold">${escape(options.title)}</text>`);
  // The subtitle may carry several facts separated by ' | ': one line each, at most two.
  options.subtitle.split(' | ').slice(0, 2).forEach((line, i) => {
    parts.push(`<text x="${WIDTH / 2}" y="${44 + i * 15}" font-size="12" text-anchor="middle" fill="#555">${escape(line)}</text>`);
  });
  for (let v = 0; v <= 100; v += 10) {
    parts.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${MARGIN.left - 8}" y="${y(v) + 4}" font-size="12" text-anchor="end">${v}%</text>`);
  }
  for (let v = xMin; v <= xMax; v += options.xStep ?? 1) {
    parts.push(`<line x1="${x(v)}" x2="${x(v)}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}" stroke="#f0f0f0"/>`);
    parts.push(`<text x="${x(v)}" y="${MARGIN.top + plotH + 20}" font-size="12" text-anchor="middle">${v}</text>`);
  }
  parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}" stroke="#333"/>`);
  parts.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${MARGIN.top + plotH}" y2="${MARGIN.top + plotH}" stroke="#333"/>`);
  parts.push(`<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 16}" font-size="13" text-anchor="middle">${escape(options.xLabel ?? 'copies of the campaign already sent (the first went to a spam trap)')}</text>`);
  parts.push(`<text transform="translate(20 ${MARGIN.top + plotH / 2}) rotate(-90)" font-size="13" text-anchor="middle">${escape(options.yLabel ?? 'copies caught')}</text>`);
  if (options.target) {
    const from = Math.max(xMin, options.target.from);
    parts.push(`<line x1="${x(from)}" x2="${x(xMax)}" y1="${y(options.target.rate)}" y2="${y(options.target.rate)}" stroke="#888" stroke-dasharray="6 4"/>`);
    parts.push(`<text x="${x(xMax) - 4}" y="${y(options.target.rate) + 14}" font-size="11" text-anchor="end" fill="#666">target ${options.target.rate}%</text>`);
  }
  const order = [...series].sort((a, b) => Number(Boolean(b.dashed)) - Number(Boolean(a.dashed)));
  for (const s of order) {
    const points = s.points.map(([px, py]) => `${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(' ');
    const dash = s.dashed ? ' stroke-dasharray="8 5"' : '';
    parts.push(`<polyline points="${points}" fill="none" stroke="${s.colour}" stroke-width="${s.dashed ? 4 : 2.5}"${dash}/>`);
    for (const [px, py] of s.points) parts.push(`<circle cx="${x(px).toFixed(1)}" cy="${y(py).toFixed(1)}" r="${s.dashed ? 5 : 3.5}" fill="${s.colour}"/>`);
  }
  // Legend in one row between the subtitle and the plot, so it never hides a line.
  series.filter((s) => s.legend !== false).forEach((s, i) => {
    const lx = MARGIN.left + 20 + i * (options.legendWidth ?? 300);
    const ly = 80;
    parts.push(`<line x1="${lx}" x2="${lx + 28}" y1="${ly}" y2="${ly}" stroke="${s.colour}" stroke-width="3"${s.dashed ? ' stroke-dasharray="8 5"' : ''}/>`);
    parts.push(`<text x="${lx + 36}" y="${ly + 4}" font-size="13">${escape(s.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** The plot of one eval result (participating, and the baseline when it ran). */
export function resultsSvg(results: {
  readonly participating: { readonly by_copies_seen: readonly { copies_seen: number; rate: number }[]; readonly false_positives: number };
  readonly baseline: { readonly by_copies_seen: readonly { copies_seen: number; rate: number }[]; readonly false_positives: number } | null;
  readonly plan: { readonly campaigns: number; readonly ham: number };
  readonly options: Record<string, unknown>;
}): string {
  const p = results.participating;
  const b = results.baseline;
  const series: Series[] = [{ label: 'participating (standard)', colour: '#1f77b4', points: p.by_copies_seen.map((c) => [c.copies_seen, c.rate] as const) }];
  if (b) series.push({ label: 'not participating (off)', colour: '#d62728', dashed: true, points: b.by_copies_seen.map((c) => [c.copies_seen, c.rate] as const) });
  const o = results.options;
  const env = Object.entries((o.gateway_env ?? {}) as Record<string, string>).map(([k, v]) => `${k}=${v}`).join(' ');
  return detectionSvg(series, {
    title: 'Detection of campaign copies against copies already sent',
    subtitle: `${results.plan.campaigns} campaigns × ${String(o.copies)} copies, ${String(o.gateways)} gateways, ${results.plan.ham} ham; false positives ${p.false_positives} (standard)${b ? `, ${b.false_positives} (off)` : ''} | gateway keys: ${String(o.key_role ?? 'reporter')}${env ? `; ${env}` : ''}; seed ${String(o.seed)}`,
    target: { from: 2, rate: 95 },
  });
}

export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).png().toBuffer();
}
