// The sentiment of a completed job: for each derived sentiment column in its profile
// (`profile.derived`, docs/profile.md), the label distribution as a bar chart (chart.js's bars:
// rows per label, rows not scored as a bar of their own) and one line of figures (rows scored,
// mean, median, quantiles). Hidden when the profile has no derived column.
//
// Not here: fetching the profile, the column table (app.js); the chart drawing (chart.js).

import { chartFor } from './chart.js';

const $ = (id) => document.getElementById(id);
const LABELS = ['positive', 'neutral', 'negative'];

/** The query-result shape chart.js draws: one row per label (and `not scored` when any). */
export function labelRows(d) {
  const rows = LABELS.map((l) => [l, d.labels?.[l] ?? 0]);
  if (d.not_scored) rows.push(['not scored', d.not_scored]);
  return { columns: ['label', 'rows'], rows };
}

function fmt(v) {
  return typeof v === 'number' ? v.toFixed(4) : '–';
}

function pct(n, total) {
  return total ? `${((100 * n) / total).toFixed(1)} %` : '–';
}

/** Shows the sentiment section for `profile`, or hides it when the profile derives nothing. */
export function showSentiment(profile) {
  const section = $('sentiment');
  const list = $('sentiment-list');
  list.replaceChildren();
  const derived = Object.entries(profile.derived || {}).filter(([, d]) => d.kind === 'sentiment');
  section.hidden = derived.length === 0;
  for (const [name, d] of derived) {
    const fig = document.createElement('figure');
    fig.className = 'chart-wrap sentiment';
    fig.dataset.column = name;
    fig.dataset.scored = String(d.scored);
    fig.dataset.notScored = String(d.not_scored);
    for (const l of LABELS) fig.dataset[l] = String(d.labels?.[l] ?? 0);
    // The key axis is titled `label` (a long column name would be cut at the chart's edge; the
    // caption names the column).
    const chart = chartFor(labelRows(d), [{ name: 'label', kind: 'category', label: 'label' }]);
    if (chart.svg) {
      // chart.js names its title and description by id for the one query chart; several of
      // these charts may be on the page, so each gets its label as an attribute instead.
      chart.svg.removeAttribute('aria-labelledby');
      chart.svg.setAttribute('aria-label', `Rows per ${d.label_column}: ${chart.svg.querySelector('desc').textContent}`);
      chart.svg.querySelector('title').removeAttribute('id');
      chart.svg.querySelector('desc').removeAttribute('id');
      fig.appendChild(chart.svg);
    }
    const cap = document.createElement('figcaption');
    const q = d.quantiles;
    cap.textContent = `${name} (${d.engine} engine, of ${d.source}): ` + [
      `${d.scored.toLocaleString('en')} of ${d.rows.toLocaleString('en')} rows scored`,
      ...LABELS.map((l) => `${l} ${pct(d.labels?.[l] ?? 0, d.scored)}`),
      `mean ${fmt(d.mean)}`,
      `median ≈ ${fmt(q?.p50)}`,
      `p10–p90 ≈ ${fmt(q?.p10)} … ${fmt(q?.p90)}`,
      `min ${fmt(d.min)}, max ${fmt(d.max)}`,
    ].join(' · ');
    fig.appendChild(cap);
    list.appendChild(fig);
  }
}

/** Hides the section (another job is shown). */
export function hideSentiment() {
  $('sentiment').hidden = true;
  $('sentiment-list').replaceChildren();
}
