import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { Histogram } from 'prom-client';
import { createMetrics } from '../../../host/src/observability/metrics.ts';
import { repoRoot } from '../../helpers/startTestHost.ts';

/** Words of PromQL that are not metric names. */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);
/** Labels Prometheus itself attaches to every scraped series. */
const TARGET_LABELS = ['job', 'instance'];

/** Metric names a PromQL expression reads (functions, keywords, labels, strings and ranges left out). */
function metricNamesIn(expr: string): string[] {
  const labelValues = /^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,/.exec(expr.trim());
  if (labelValues !== null) return [labelValues[1] as string];
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names: string[] = [];
  for (const match of stripped.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const word = match[1] as string;
    if (match[2] !== undefined || KEYWORDS.has(word.toLowerCase())) continue;
    names.push(word);
  }
  return names;
}

/** `name{label=...}` pairs of an expression: the label names each selector filters on. */
function selectorsIn(expr: string): Array<{ name: string; labels: string[] }> {
  const out: Array<{ name: string; labels: string[] }> = [];
  for (const match of expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/g)) {
    const labels = [...(match[2] as string).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1] as string);
    out.push({ name: match[1] as string, labels });
  }
  return out;
}

interface Panel {
  type: string;
  title: string;
  targets?: Array<{ expr: string }>;
}

describe('docs/grafana-dashboard.json', () => {
  const exposed = new Map<string, Set<string>>();
  let dashboard: { panels: Panel[]; templating: { list: Array<{ query?: unknown }> } };
  let exprs: Array<{ where: string; expr: string }>;

  before(async () => {
    const metrics = createMetrics();
    for (const metric of await metrics.registry.getMetricsAsJSON()) {
      const single = metrics.registry.getSingleMetric(metric.name);
      const labelNames = (single as unknown as { labelNames?: string[] } | undefined)?.labelNames ?? [];
      const labels = new Set([...labelNames, ...TARGET_LABELS]);
      exposed.set(metric.name, labels);
      if (single instanceof Histogram) {
        exposed.set(`${metric.name}_bucket`, new Set([...labels, 'le']));
        exposed.set(`${metric.name}_sum`, labels);
        exposed.set(`${metric.name}_count`, labels);
      }
    }
    dashboard = JSON.parse(await readFile(path.join(repoRoot, 'docs', 'grafana-dashboard.json'), 'utf8'));
    exprs = [];
    for (const panel of dashboard.panels) for (const target of panel.targets ?? []) exprs.push({ where: panel.title, expr: target.expr });
    for (const variable of dashboard.templating.list) {
      const query = variable.query;
      if (typeof query === 'object' && query !== null && typeof (query as { query?: unknown }).query === 'string') exprs.push({ where: 'templating', expr: (query as { query: string }).query });
    }
  });

  it('reads only series the host registry exposes, each expression at least one', () => {
    assert.ok(exprs.length >= 20, `only ${exprs.length} expressions`);
    for (const { where, expr } of exprs) {
      const names = metricNamesIn(expr);
      assert.ok(names.length > 0, `${where}: no metric in ${expr}`);
      for (const name of names) assert.ok(exposed.has(name), `${where}: ${name} is not exported by the host (${expr})`);
    }
  });

  it('filters each series only on labels that series has', () => {
    for (const { where, expr } of exprs) {
      for (const { name, labels } of selectorsIn(expr)) {
        const known = exposed.get(name);
        assert.ok(known !== undefined, `${where}: ${name} is not exported`);
        for (const label of labels) assert.ok(known.has(label), `${where}: ${name} has no label ${label} (${expr})`);
      }
    }
  });

  it('has a panel for every series of the issue 6 catalog', () => {
    const used = new Set(exprs.flatMap(({ expr }) => metricNamesIn(expr)).map((n) => n.replace(/_(bucket|sum|count)$/, '')));
    for (const name of [
      'worker_create_latency_ms', 'worker_terminate_latency_ms', 'health_check_failures_total', 'rotation_success_total', 'rotation_latency_ms',
      'provider_operations_errors_total', 'event_publish_latency_ms', 'secrets_mounts_total', 'plugin_restarts_total', 'plugin_quarantined',
      'plugin_call_latency_ms', 'event_outbox_depth',
    ]) {
      assert.ok(used.has(name), `no panel reads ${name}`);
    }
  });

  it('finds the metric names of an expression, and would flag one the host does not export', () => {
    assert.deepEqual(
      metricNamesIn('histogram_quantile(0.95, sum by (le, provider) (rate(worker_create_latency_ms_bucket{provider=~"$provider"}[$__rate_interval])))'),
      ['worker_create_latency_ms_bucket'],
    );
    assert.deepEqual(metricNamesIn('sum(rate(a_total[5m])) / on (x) group_left b_total > bool 0'), ['a_total', 'b_total']);
    assert.deepEqual(metricNamesIn('label_values(plugin_up, plugin_instance)'), ['plugin_up']);
    assert.equal(exposed.has(metricNamesIn('rate(worker_created_total[5m])')[0] as string), false);
  });
});
