// Draws the dashboard's main panels from a Prometheus's query results with
// gnuplot, for docs/observability.md: node deploy/grafana/snapshot.mjs PROM_URL OUT.png
// (deploy/grafana/snapshot.sh runs a cluster, Prometheus and a load first).
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [prom, out] = process.argv.slice(2);
const dashboard = JSON.parse(readFileSync(new URL('./dashboards/moa-cluster.json', import.meta.url)));
const models = 'qwen-2-72b|qwen-1.5-72b|mixtral-8x22b|wizardlm-2-8x22b|qwen-1.5-110b';
const wanted = ['Answer time to first token', 'Request duration (ok)', 'Layer duration',
  'Time to first token', 'Tokens per second generated', 'Upstream calls in flight'];
const end = Math.floor(Date.now() / 1000);
const start = end - Number(process.env.SNAPSHOT_SECONDS ?? 120);
const dir = mkdtempSync(join(tmpdir(), 'moa-snapshot-'));
let plots = [];
for (const title of wanted) {
  const panel = dashboard.panels.find((p) => p.title === title);
  const series = [];
  for (const t of panel.targets) {
    const expr = t.expr.replaceAll('$__rate_interval', '30s').replaceAll('$pipeline', 'moa')
      .replaceAll('$model', models);
    const url = `${prom}/api/v1/query_range?query=${encodeURIComponent(expr)}&start=${start}&end=${end}&step=2`;
    const res = await (await fetch(url)).json();
    for (const s of res.data.result) {
      const legend = t.legendFormat.replace(/\{\{(\w+)\}\}/g, (_, k) => s.metric[k] ?? '');
      const file = join(dir, `${plots.length}-${series.length}.dat`);
      writeFileSync(file, s.values.filter(([, v]) => v !== 'NaN')
        .map(([ts, v]) => `${ts - start} ${v}`).join('\n') + '\n');
      series.push({ file, legend });
    }
  }
  plots.push({ title, unit: panel.fieldConfig.defaults.unit, series });
}
// Grafana's unit ids as axis labels: seconds, requests/s, or a custom suffix.
function axisLabel(unit) {
  if (unit === 's') return 'seconds';
  if (unit === 'reqps') return 'requests/s';
  if (unit?.startsWith('suffix:')) return unit.slice('suffix:'.length);
  return unit ?? '';
}
let gp = `set terminal pngcairo size 1600,1000 font 'Sans,9'\nset output '${out}'\n` +
  `set multiplot layout 3,2 title 'moa-cluster dashboard (local cluster on the simulator, from Prometheus)'\n` +
  `set key outside right top font 'Sans,7'\nset grid\nset xlabel 'seconds'\n`;
for (const p of plots) {
  gp += `set title '${p.title}'\nset ylabel '${axisLabel(p.unit)}'\n`;
  gp += 'plot ' + p.series.map((s) => `'${s.file}' using 1:2 with lines title '${s.legend.replaceAll("'", '')}'`).join(', ') + '\n';
}
gp += 'unset multiplot\n';
writeFileSync(join(dir, 'plot.gp'), gp);
execFileSync('gnuplot', [join(dir, 'plot.gp')]);
console.log(`wrote ${out}`);
