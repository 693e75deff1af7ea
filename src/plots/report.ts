/**
 * report.html: one self-contained page (no scripts, no network; every picture a data: URI) with the
 * final metrics, all pictures, a grid of final samples and the resolved config. Browser-safe.
 */
import type { MetricRecord } from './charts.js';

/** `bytes` as a data: URI (base64). */
export function dataUri(bytes: Uint8Array | string, mimeType: string): string {
  const data = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
  let binary = '';
  for (let i = 0; i < data.length; i += 0x8000) binary += String.fromCharCode(...data.subarray(i, i + 0x8000));
  return `data:${mimeType};base64,${btoa(binary)}`;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A picture in the report: file name, caption and data URI. */
export interface ReportPicture {
  /** File name in the run directory (shown after the caption); none for a report-only picture. */
  file?: string;
  caption: string;
  /** The picture as a data: URI. */
  src: string;
  /** Charts are shown one under another, animations side by side. */
  kind?: 'chart' | 'animation';
  /** Shown at this CSS width (the PNG charts are rendered at twice their size). */
  displayWidth?: number;
}

/** What `reportHtml` draws the report from. */
export interface ReportInputs {
  title: string;
  /** The resolved config.yaml. */
  configText: string;
  /** results.json. */
  results: unknown;
  /** metrics.jsonl records (the last evaluation point is summarised). */
  metrics: readonly MetricRecord[];
  pictures: readonly ReportPicture[];
  /** The final samples, as lines of 0/1, and the same as a picture. */
  finalSamples?: { lines: readonly string[]; picture?: ReportPicture };
  /** Pictures that could not be drawn, and why (listed in the report). */
  missing?: readonly string[];
}

/** Numbers to at most six significant digits; everything else as JSON (short) or a count. */
export function formatValue(value: unknown): string {
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
  if (typeof value === 'string') return value;
  if (value === null || value === undefined || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) {
    const json = JSON.stringify(value);
    return json.length <= 80 ? json : `(${value.length} items)`;
  }
  return JSON.stringify(value);
}

/** Flattens an object into [dotted key, value] rows (arrays are kept whole). */
export function flattenForTable(value: unknown, prefix = ''): [string, unknown][] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [[prefix || 'value', value]];
  const rows: [string, unknown][] = [];
  for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (inner !== null && typeof inner === 'object' && !Array.isArray(inner)) rows.push(...flattenForTable(inner, path));
    else rows.push([path, inner]);
  }
  return rows;
}

function table(rows: readonly [string, unknown][]): string {
  const body = rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(formatValue(v))}</td></tr>`).join('\n');
  return `<table>\n${body}\n</table>`;
}

function figure(p: ReportPicture): string {
  const width = p.displayWidth ? ` style="width:${p.displayWidth}px"` : '';
  return `<figure><img src="${p.src}" alt="${escapeHtml(p.caption)}"${width}><figcaption>${escapeHtml(p.caption)}${p.file ? ` <span class="file">${escapeHtml(p.file)}</span>` : ''}</figcaption></figure>`;
}

function finalEvaluation(metrics: readonly MetricRecord[]): [string, unknown][] {
  const last = [...metrics].reverse().find((r) => typeof r.bound_bits === 'number' || typeof r.prop_train === 'number');
  if (!last) return [];
  const rows: [string, unknown][] = [['step', last.step]];
  if (typeof last.bound_bits === 'number')
    rows.push([
      'bound (bits/sequence)',
      typeof last.bound_stderr === 'number' ? `${formatValue(last.bound_bits)} ± ${formatValue(last.bound_stderr)}` : last.bound_bits,
    ]);
  const val = last.prop_val ?? (last as { prop_data?: number }).prop_data;
  const percent = (x: number | undefined) => (typeof x === 'number' ? `${(100 * x).toFixed(1)}%` : undefined);
  for (const [name, share] of [
    ['samples in the training data', percent(last.prop_train)],
    ['samples in the held-out data', percent(val)],
    ['samples in neither', percent(last.prop_other)],
  ] as const)
    if (share !== undefined) rows.push([name, share]);
  if (typeof last.distinct === 'number') rows.push(['distinct samples', last.distinct]);
  if (typeof last.elapsed === 'number') rows.push(['elapsed (s)', last.elapsed]);
  return rows;
}

const style = `
body { font-family: system-ui, -apple-system, "DejaVu Sans", sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; margin-bottom: 0.25rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.25rem; }
.sub { color: #666; margin-top: 0; }
.row { display: flex; flex-wrap: wrap; gap: 2rem; align-items: flex-start; } .charts { flex-direction: column; gap: 0.5rem; }
figure { margin: 0 0 1.5rem 0; display: table; } figure figcaption { display: table-caption; caption-side: bottom; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; image-rendering: pixelated; }
figure img[src^="data:image/svg"] { image-rendering: auto; }
figcaption { color: #555; font-size: 0.9rem; margin-top: 0.3rem; } .file { font-family: ui-monospace, "DejaVu Sans Mono", monospace; color: #888; }
table { border-collapse: collapse; font-size: 0.92rem; } th, td { text-align: left; padding: 0.2rem 0.8rem 0.2rem 0; border-bottom: 1px solid #f0f0f0; vertical-align: top; }
th { font-weight: normal; color: #555; } td { font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: 0.8rem; overflow: auto; font-size: 0.85rem; line-height: 1.35; }
.missing { color: #a33; }
`;

/** The whole page as one HTML string. */
export function reportHtml(inputs: ReportInputs): string {
  const evaluation = finalEvaluation(inputs.metrics);
  const results = flattenForTable(inputs.results ?? {}).filter(([, v]) => !(Array.isArray(v) && v.length > 8));
  const samples = inputs.finalSamples;
  const parts: string[] = [];
  parts.push(`<h1>${escapeHtml(inputs.title)}</h1>`);
  const lastStep = inputs.metrics.at(-1)?.step;
  parts.push(
    `<p class="sub">Bernoulli diffusion run report${lastStep !== undefined ? `, ${lastStep} training steps` : ''}. Losses and bounds are in bits per sequence.</p>`,
  );
  parts.push('<h2>Final metrics</h2>', '<div class="row">');
  if (evaluation.length > 0) parts.push(`<div><h3>Last evaluation</h3>${table(evaluation)}</div>`);
  parts.push(`<div><h3>results.json</h3>${results.length > 0 ? table(results) : '<p>(empty)</p>'}</div>`, '</div>');
  parts.push('<h2>Pictures</h2>');
  for (const kind of ['chart', 'animation'] as const) {
    const group = inputs.pictures.filter((p) => (p.kind ?? 'chart') === kind);
    if (group.length > 0) parts.push(`<div class="row ${kind}s">\n${group.map(figure).join('\n')}\n</div>`);
  }
  if (inputs.missing && inputs.missing.length > 0) parts.push(`<ul class="missing">${inputs.missing.map((m) => `<li>${escapeHtml(m)}</li>`).join('')}</ul>`);
  if (samples && samples.lines.length > 0) {
    parts.push(`<h2>Final samples (${samples.lines.length})</h2>`, '<div class="row">');
    if (samples.picture) parts.push(figure(samples.picture));
    parts.push(`<pre>${samples.lines.map(escapeHtml).join('\n')}</pre>`, '</div>');
  }
  parts.push('<h2>Resolved config</h2>', `<pre id="config">${escapeHtml(inputs.configText)}</pre>`);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(inputs.title)}</title>
<style>${style}</style>
</head>
<body>
${parts.join('\n')}
</body>
</html>
`;
}
