// Small inline-SVG charts of a query result's first aggregate: horizontal bars for a grouping by
// a category (the top N groups by value) or by a numeric bucket (in key order), and a line (one
// per value of a second key, up to a few) when the first key is a date/time bucket. No library,
// no network: the page works offline. No DOM besides the SVG it returns.
//
// Not here: the table, the form, the API (query.js).

const NS = 'http://www.w3.org/2000/svg';
/** Most bars drawn (the rest are named in the caption). */
export const MAX_BARS = 20;
/** Most lines drawn when a second key splits a time series. */
export const MAX_SERIES = 6;
const PALETTE = ['#2457c5', '#c2410c', '#15803d', '#7c3aed', '#b91c1c', '#0f766e'];

/** A chart value as a number (counts are JSON numbers, exact sums and averages strings), or null. */
export function toNumber(v) {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'string' && /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(v)) return Number(v);
  return null;
}

/** Milliseconds since the epoch of a bucket key (`YYYY-MM-DD` or an RFC 3339 timestamp), or null. */
export function toTime(v) {
  if (typeof v !== 'string') return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/.exec(v);
  if (!m) return null;
  const t = Date.parse(m[4] ? v.replace(' ', 'T') : `${v}T00:00:00Z`);
  return Number.isFinite(t) ? t : null;
}

/** Round tick values covering [lo, hi]: about `n` of them, steps of 1, 2 or 5 x 10^k. */
export function ticks(lo, hi, n = 5) {
  if (lo === hi) { if (lo === 0) return [0, 1]; lo = Math.min(0, lo); hi = Math.max(0, hi); }
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => raw <= s);
  const start = Math.floor(lo / step) * step;
  const out = [];
  for (let v = start; v <= hi + step * 1e-9; v += step) out.push(Number((v).toPrecision(12)));
  if (out[out.length - 1] < hi) out.push(Number((out[out.length - 1] + step).toPrecision(12)));
  return out;
}

/** A short label for a number on an axis or a bar: 1 234 567 -> "1.23M". */
export function short(v) {
  const a = Math.abs(v);
  const fix = (x, s) => `${Number(x.toPrecision(3))}${s}`;
  if (a >= 1e12) return fix(v / 1e12, 'T');
  if (a >= 1e9) return fix(v / 1e9, 'G');
  if (a >= 1e6) return fix(v / 1e6, 'M');
  if (a >= 1e4) return fix(v / 1e3, 'k');
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(4)));
}

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function keyText(v) {
  return v === null || v === undefined ? '(null)' : String(v);
}

/** A date/time key as its period's label: month buckets as `2026-03`, years as `2026`, ... */
function timeLabel(v, bucket) {
  const s = String(v);
  if (bucket === 'year') return s.slice(0, 4);
  if (bucket === 'month') return s.slice(0, 7);
  if (bucket === 'hour') return `${s.slice(0, 10)} ${s.slice(11, 13)}h`;
  if (bucket === 'day' || bucket === 'week') return s.slice(0, 10);
  return s;
}

/**
 * What to draw for `result` (`{columns, rows}`) grouped by `keys` (one `{name, kind, bucket}`
 * per group key in the document's order; `kind` is `time` for a date/time bucket, `number` for
 * a numeric bucket, else `category`): `{kind: 'bar'|'line', svg, note}`, or `{kind: null, note}`
 * saying why there is no chart.
 */
export function chartFor(result, keys) {
  const k = keys.length;
  if (k === 0) return { kind: null, note: 'No chart: the query has no group key (one row of totals).' };
  if (result.rows.length < 2) return { kind: null, note: 'No chart: the result has a single row.' };
  const label = result.columns[k];
  const values = result.rows.map((r) => toNumber(r[k]));
  if (values.every((v) => v === null)) return { kind: null, note: `No chart: ${label} is not a number.` };
  if (keys[0].kind === 'time') return line(result, keys, label);
  return bars(result, keys, label);
}

function bars(result, keys, label) {
  const k = keys.length;
  let items = result.rows.map((r) => ({
    key: r.slice(0, k).map(keyText).join(' · '),
    raw: r[k],
    value: toNumber(r[k]),
    first: r[0],
  })).filter((it) => it.value !== null);
  let note = '';
  const total = items.length;
  if (keys[0].kind === 'number' && k === 1) {
    items.sort((a, b) => (toNumber(a.first) ?? Infinity) - (toNumber(b.first) ?? Infinity));
    if (items.length > MAX_BARS) { items = items.slice(0, MAX_BARS); note = `The first ${MAX_BARS} of ${total} buckets.`; }
  } else {
    items.sort((a, b) => b.value - a.value || (a.key < b.key ? -1 : 1));
    if (items.length > MAX_BARS) { items = items.slice(0, MAX_BARS); note = `The top ${MAX_BARS} of ${total} groups by ${label}.`; }
  }
  const skipped = result.rows.length - total;
  if (skipped) note += `${note ? ' ' : ''}${skipped} group(s) with no value are not drawn.`;

  const rowH = 26;
  const labelW = Math.min(220, 12 + 7.2 * Math.max(...items.map((it) => Math.min(it.key.length, 28))));
  const W = 760;
  const top = 26;
  const plotW = W - labelW - 70;
  const H = top + items.length * rowH + 44;
  const lo = Math.min(0, ...items.map((it) => it.value));
  const hi = Math.max(0, ...items.map((it) => it.value));
  const tk = ticks(lo, hi, 5);
  const [d0, d1] = [tk[0], tk[tk.length - 1]];
  const x = (v) => labelW + ((v - d0) / (d1 - d0)) * plotW;
  const keyName = keys.map((kk) => kk.label).join(' · ');

  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', class: 'chart chart-bar', 'data-kind': 'bar', 'aria-labelledby': 'chart-title chart-desc' });
  svg.appendChild(el('title', { id: 'chart-title' }, `${label} by ${keyName}`));
  svg.appendChild(el('desc', { id: 'chart-desc' }, items.map((it) => `${it.key}: ${it.raw}`).join('; ')));
  const bottom = top + items.length * rowH;
  const grid = el('g', { class: 'grid' });
  for (const t of tk) {
    grid.appendChild(el('line', { x1: x(t), x2: x(t), y1: top, y2: bottom, class: t === 0 ? 'zero' : '' }));
    grid.appendChild(el('text', { x: x(t), y: bottom + 16, 'text-anchor': 'middle', class: 'tick' }, short(t)));
  }
  svg.appendChild(grid);
  svg.appendChild(el('text', { x: labelW + plotW / 2, y: H - 8, 'text-anchor': 'middle', class: 'axis-title' }, label));
  svg.appendChild(el('text', { x: labelW - 8, y: 16, 'text-anchor': 'end', class: 'axis-title' }, keyName));
  items.forEach((it, i) => {
    const y = top + i * rowH;
    const g = el('g', { class: 'bar', 'data-key': it.key, 'data-value': String(it.raw) });
    const x0 = x(Math.min(0, it.value));
    const w = Math.max(1, Math.abs(x(it.value) - x(0)));
    g.appendChild(el('title', {}, `${it.key}: ${it.raw}`));
    const shown = it.key.length > 28 ? `${it.key.slice(0, 27)}…` : it.key;
    g.appendChild(el('text', { x: labelW - 8, y: y + rowH / 2 + 4, 'text-anchor': 'end', class: 'key' }, shown));
    g.appendChild(el('rect', { x: x0, y: y + 4, width: w, height: rowH - 8, rx: 2 }));
    const neg = it.value < 0;
    g.appendChild(el('text', { x: neg ? x0 - 4 : x0 + w + 4, y: y + rowH / 2 + 4, 'text-anchor': neg ? 'end' : 'start', class: 'value' }, short(it.value)));
    svg.appendChild(g);
  });
  return { kind: 'bar', svg, note, drawn: items.length };
}

function line(result, keys, label) {
  const k = keys.length;
  const bucket = keys[0].bucket;
  // One series per value of the second key (the largest totals first), or one series.
  const groups = new Map();
  let skipped = 0;
  for (const r of result.rows) {
    const t = toTime(r[0]);
    const v = toNumber(r[k]);
    if (t === null || v === null) { skipped++; continue; }
    const name = k > 1 ? keyText(r[1]) : label;
    if (!groups.has(name)) groups.set(name, []);
    groups.get(name).push({ t, v, raw: r[k], key: r[0] });
  }
  let series = [...groups.entries()].map(([name, pts]) => ({ name, pts: pts.sort((a, b) => a.t - b.t), total: pts.reduce((s, p) => s + Math.abs(p.v), 0) }));
  series.sort((a, b) => b.total - a.total || (a.name < b.name ? -1 : 1));
  let note = '';
  if (series.length > MAX_SERIES) { note = `The ${MAX_SERIES} largest of ${series.length} ${keys[1].label} values.`; series = series.slice(0, MAX_SERIES); }
  if (skipped) note += `${note ? ' ' : ''}${skipped} row(s) with no value or date are not drawn.`;
  const pts = series.flatMap((s) => s.pts);
  if (pts.length < 2) return { kind: null, note: 'No chart: fewer than two points to join.' };

  const W = 760;
  const H = 320;
  const m = { l: 70, r: series.length > 1 ? 150 : 24, t: 16, b: 58 };
  const plotW = W - m.l - m.r;
  const plotH = H - m.t - m.b;
  const times = [...new Set(pts.map((p) => p.t))].sort((a, b) => a - b);
  const [t0, t1] = [times[0], times[times.length - 1]];
  const lo = Math.min(0, ...pts.map((p) => p.v));
  const hi = Math.max(0, ...pts.map((p) => p.v));
  const tk = ticks(lo, hi, 5);
  const [d0, d1] = [tk[0], tk[tk.length - 1]];
  const x = (t) => m.l + (t1 === t0 ? plotW / 2 : ((t - t0) / (t1 - t0)) * plotW);
  const y = (v) => m.t + plotH - ((v - d0) / (d1 - d0)) * plotH;
  const keyName = keys[0].label;

  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', class: 'chart chart-line', 'data-kind': 'line', 'aria-labelledby': 'chart-title chart-desc' });
  svg.appendChild(el('title', { id: 'chart-title' }, `${label} by ${keyName}${k > 1 ? ` and ${keys[1].label}` : ''}`));
  svg.appendChild(el('desc', { id: 'chart-desc' }, series.map((s) => `${s.name}: ${s.pts.map((p) => `${timeLabel(p.key, bucket)} ${p.raw}`).join(', ')}`).join('; ')));
  const grid = el('g', { class: 'grid' });
  for (const t of tk) {
    grid.appendChild(el('line', { x1: m.l, x2: m.l + plotW, y1: y(t), y2: y(t), class: t === 0 ? 'zero' : '' }));
    grid.appendChild(el('text', { x: m.l - 6, y: y(t) + 4, 'text-anchor': 'end', class: 'tick' }, short(t)));
  }
  const every = Math.max(1, Math.ceil(times.length / 12));
  times.forEach((t, i) => {
    if (i % every && i !== times.length - 1) return;
    const key = pts.find((p) => p.t === t).key;
    grid.appendChild(el('line', { x1: x(t), x2: x(t), y1: m.t + plotH, y2: m.t + plotH + 4 }));
    grid.appendChild(el('text', { x: x(t), y: m.t + plotH + 18, 'text-anchor': 'middle', class: 'tick' }, timeLabel(key, bucket)));
  });
  svg.appendChild(grid);
  svg.appendChild(el('text', { x: m.l + plotW / 2, y: H - 10, 'text-anchor': 'middle', class: 'axis-title' }, keyName));
  svg.appendChild(el('text', { x: 14, y: m.t + plotH / 2, 'text-anchor': 'middle', class: 'axis-title', transform: `rotate(-90 14 ${m.t + plotH / 2})` }, label));
  const labelled = pts.length <= 24;
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const g = el('g', { class: 'series', 'data-series': s.name, style: `--c: ${color}` });
    g.appendChild(el('polyline', { points: s.pts.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' '), fill: 'none', stroke: color }));
    for (const p of s.pts) {
      const dot = el('circle', { cx: x(p.t), cy: y(p.v), r: 3.5, fill: color, class: 'point', 'data-key': String(p.key), 'data-value': String(p.raw) });
      dot.appendChild(el('title', {}, `${series.length > 1 ? `${s.name}, ` : ''}${timeLabel(p.key, bucket)}: ${p.raw}`));
      g.appendChild(dot);
      if (labelled) g.appendChild(el('text', { x: x(p.t), y: y(p.v) - 8, 'text-anchor': 'middle', class: 'value' }, short(p.v)));
    }
    if (series.length > 1) {
      const ly = m.t + 6 + i * 20;
      g.appendChild(el('rect', { x: W - m.r + 14, y: ly - 8, width: 12, height: 12, fill: color }));
      g.appendChild(el('text', { x: W - m.r + 32, y: ly + 2, class: 'key' }, s.name.length > 16 ? `${s.name.slice(0, 15)}…` : s.name));
    }
    svg.appendChild(g);
  });
  return { kind: 'line', svg, note, drawn: pts.length };
}
