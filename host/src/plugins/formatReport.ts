import type { ReportRow } from './PluginRegistry.ts';

/** Human-readable startup report: one line per instance, then each failure's message in full. */
export function formatReport(rows: readonly ReportRow[]): string {
  const header = ['INSTANCE', 'PLUGIN', 'VERSION', 'KIND', 'ISOLATION', 'STATE', 'CAPABILITIES / ERROR'];
  const body = rows.map((r) => [
    r.instance + (r.default ? ' (default)' : ''),
    r.plugin,
    r.version ?? '-',
    r.kind ?? '-',
    r.isolation,
    r.state,
    r.error !== null ? r.error.code : Object.entries(r.capabilities).map(([k, v]) => `${k}@${v}`).join(' '),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
  const out = [line(header), ...body.map(line)];
  const failures = rows.filter((r) => r.error !== null);
  if (failures.length > 0) {
    out.push('', 'Failures:');
    for (const r of failures) out.push(`  ${r.instance !== '-' ? r.instance : r.plugin}: [${r.error?.code}] ${r.error?.message}`);
  }
  const ignored = rows.filter((r) => r.ignoredCapabilities.length > 0);
  for (const r of ignored) {
    out.push(`  note: ${r.plugin} declares capabilities this host ignores: ${r.ignoredCapabilities.map((c) => `${c.capability}@${c.version} (${c.reason})`).join(', ')}`);
  }
  return out.join('\n');
}
