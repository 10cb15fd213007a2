/**
 * The benchmark's report: one row per figure with its limit, ratio and
 * target, as a markdown table and as an SVG chart (throughput ratios and the
 * latency distribution).
 */

export interface Figure {
  scenario: string;
  metric: string;
  value: number;
  unit: string;
  /** The machine's own limit for this figure, measured in the same run. */
  limit?: { name: string; value: number };
  target?: { text: string; met: boolean };
}

const format = (value: number): string =>
  Number.isFinite(value) ? (Math.abs(value) >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1)) : 'n/a';

export function markdownTable(figures: Figure[]): string {
  const lines = [
    '| scenario | figure | value | limit (same run) | ratio | target |',
    '| --- | --- | ---: | --- | ---: | --- |',
  ];
  for (const f of figures) {
    const limit = f.limit ? `${f.limit.name}: ${format(f.limit.value)}` : '';
    const ratio = f.limit ? `${((f.value / f.limit.value) * 100).toFixed(0)} %` : '';
    const target = f.target ? `${f.target.met ? 'met' : 'MISSED'} (${f.target.text})` : '';
    lines.push(`| ${f.scenario} | ${f.metric} | ${format(f.value)} ${f.unit} | ${limit} | ${ratio} | ${target} |`);
  }
  return lines.join('\n');
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Two panels: bars of value/limit per throughput figure; latency percentiles over the sorted samples. */
export function svgChart(figures: Figure[], latenciesMs: number[], title: string): string {
  const ratios = figures.filter((f) => f.limit);
  const width = 900;
  const barHeight = 26;
  const panelTop = 60;
  const ratioHeight = ratios.length * (barHeight + 10);
  const latencyTop = panelTop + ratioHeight + 70;
  const latencyHeight = 220;
  const height = latencyTop + latencyHeight + 60;
  const labelWidth = 330;
  const barMax = width - labelWidth - 120;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="20" y="28" font-size="17" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="20" y="50" fill="#555">walbridge throughput as a share of the machine's own limit, measured in the same run</text>`,
  ];
  ratios.forEach((f, i) => {
    const ratio = f.value / (f.limit?.value ?? 1);
    const y = panelTop + i * (barHeight + 10);
    const barWidth = Math.max(1, Math.min(1.5, ratio) * barMax / 1.5);
    parts.push(
      `<text x="20" y="${y + 18}">${escapeXml(`${f.scenario}: ${f.metric}`)}</text>`,
      `<rect x="${labelWidth}" y="${y}" width="${barWidth.toFixed(1)}" height="${barHeight}" fill="${ratio >= 1 ? '#2b8a3e' : '#1c7ed6'}"/>`,
      `<line x1="${labelWidth + barMax / 1.5}" y1="${y - 3}" x2="${labelWidth + barMax / 1.5}" y2="${y + barHeight + 3}" stroke="#c92a2a" stroke-dasharray="3,2"/>`,
      `<text x="${labelWidth + barWidth + 6}" y="${y + 18}">${(ratio * 100).toFixed(0)} % of ${escapeXml(f.limit?.name ?? '')}</text>`,
    );
  });
  parts.push(`<text x="20" y="${latencyTop - 20}" font-weight="bold">Steady load: commit-to-visible latency per transaction (ms), by percentile</text>`);
  if (latenciesMs.length > 0) {
    const max = Math.max(...latenciesMs, 1);
    const plotLeft = 70;
    const plotWidth = width - plotLeft - 40;
    const points = latenciesMs.map((ms, i) => {
      const x = plotLeft + (i / Math.max(1, latenciesMs.length - 1)) * plotWidth;
      const y = latencyTop + latencyHeight - (ms / max) * latencyHeight;
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    parts.push(
      `<polyline fill="none" stroke="#1c7ed6" stroke-width="2" points="${points.join(' ')}"/>`,
      `<line x1="${plotLeft}" y1="${latencyTop + latencyHeight}" x2="${plotLeft + plotWidth}" y2="${latencyTop + latencyHeight}" stroke="#333"/>`,
      `<line x1="${plotLeft}" y1="${latencyTop}" x2="${plotLeft}" y2="${latencyTop + latencyHeight}" stroke="#333"/>`,
      `<text x="${plotLeft - 8}" y="${latencyTop + 5}" text-anchor="end">${format(max)}</text>`,
      `<text x="${plotLeft - 8}" y="${latencyTop + latencyHeight}" text-anchor="end">0</text>`,
    );
    for (const p of [50, 95, 99]) {
      const x = plotLeft + (p / 100) * plotWidth;
      parts.push(
        `<line x1="${x}" y1="${latencyTop}" x2="${x}" y2="${latencyTop + latencyHeight}" stroke="#aaa" stroke-dasharray="2,3"/>`,
        `<text x="${x}" y="${latencyTop + latencyHeight + 18}" text-anchor="middle">p${p}</text>`,
      );
    }
  }
  parts.push('</svg>');
  return parts.join('\n');
}
