import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { canaryMetricsText } from '../../../messages-lib/src/probe/canary-metrics.js';
import { LatencyHistogram } from '../../../messages-lib/src/probe/histogram.js';

const k8s = (path: string) =>
  readFileSync(fileURLToPath(new URL(`../../../k8s/${path}`, import.meta.url)), 'utf8');

/** Metric families in a Prometheus text exposition. */
function families(text: string): Set<string> {
  return new Set(
    text
      .split('\n')
      .filter((l) => l.startsWith('# TYPE '))
      .map((l) => l.split(' ')[2]!),
  );
}

function probeMetricsIn(expr: string): string[] {
  return [...expr.matchAll(/switchboard_probe_[a-z_]+/g)].map((m) =>
    m[0].replace(/_(bucket|count|sum)$/, ''),
  );
}

/**
 * What operators get from the canary fits together: every metric the alert rules and the Grafana
 * canary row query is one the canary exports, and Prometheus' canary job keeps the pods that
 * k8s/canary deploys, on the port the canary listens on.
 */
describe('canary monitoring (alerts, dashboard, scrape job)', () => {
  const exported = families(
    canaryMetricsText({
      sent: 1,
      acked: 1,
      failed: 0,
      delivered: 2,
      lost: 0,
      duplicates: 0,
      outOfOrder: 0,
      reconnects: 0,
      unacked: 0,
      pending: 0,
      clients: 2,
      clientsOpen: 2,
      latency: new LatencyHistogram(),
      loopDelay: { p99: 0, max: 0 },
      rssBytes: 1,
    }),
  );

  it('exports the metrics the issue names', () => {
    for (const name of [
      'switchboard_probe_sent_total',
      'switchboard_probe_acked_total',
      'switchboard_probe_delivered_total',
      'switchboard_probe_lost_total',
      'switchboard_probe_duplicates_total',
      'switchboard_probe_out_of_order_total',
      'switchboard_probe_reconnects_total',
      'switchboard_probe_latency_seconds',
      'switchboard_probe_event_loop_delay_seconds',
    ]) {
      expect(exported.has(name), name).to.equal(true);
    }
  });

  it('alert rules: lost > 0 and p99 over a threshold for 5 minutes, on exported metrics', () => {
    const values = parse(k8s('monitoring/prometheus-values.yaml')) as {
      serverFiles: {
        'alerting_rules.yml': { groups: { rules: { alert: string; expr: string; for?: string }[] }[] };
      };
    };
    const rules = values.serverFiles['alerting_rules.yml'].groups.flatMap((g) => g.rules);
    const lost = rules.find((r) => r.alert === 'SwitchboardCanaryLostMessages')!;
    expect(lost.expr).to.match(/switchboard_probe_lost_total.*> 0$/);
    const latency = rules.find((r) => r.alert === 'SwitchboardCanaryLatencyHigh')!;
    expect(latency.expr).to.match(/histogram_quantile\(0\.99,/);
    expect(latency.for).to.equal('5m');
    for (const r of rules)
      for (const m of probeMetricsIn(r.expr)) expect(exported.has(m), `${r.alert}: ${m}`).to.equal(true);
  });

  it('the Grafana canary row queries exported metrics, and the lag panel the node’s gauges', () => {
    const dash = JSON.parse(k8s('monitoring/grafana-dashboard.json')) as {
      panels: { type: string; title: string; targets?: { expr: string }[] }[];
    };
    const row = dash.panels.findIndex((p) => p.type === 'row' && p.title.startsWith('Canary'));
    expect(row).to.be.greaterThan(0);
    const canaryPanels = dash.panels.slice(row + 1).filter((p) => p.title.startsWith('Canary'));
    expect(canaryPanels.length).to.be.at.least(3);
    const queried = canaryPanels.flatMap((p) => (p.targets ?? []).flatMap((t) => probeMetricsIn(t.expr)));
    expect(queried).to.include.members(['switchboard_probe_latency_seconds', 'switchboard_probe_lost_total']);
    for (const m of queried) expect(exported.has(m), m).to.equal(true);
    const lag = dash.panels.find((p) => p.title.startsWith('Event loop delay'))!;
    expect(lag.targets!.map((t) => t.expr).join(' ')).to.contain('nodejs_eventloop_lag_p99_seconds');
  });

  it('the scrape job keeps the canary pods, on the port and path the canary serves', () => {
    const jobs = parse(k8s('monitoring/prometheus-scrape-config.yaml')) as {
      job_name: string;
      relabel_configs: { source_labels: string[]; regex?: string; action?: string }[];
    }[];
    const job = jobs.find((j) => j.job_name === 'switchboard-canary')!;
    const keep = job.relabel_configs.find(
      (r) => r.source_labels[0] === '__meta_kubernetes_pod_label_app_kubernetes_io_name',
    )!;
    const deployment = parseAllDocuments(k8s('canary/canary-deployment.yaml'))[0]!.toJSON() as {
      spec: {
        template: {
          metadata: { labels: Record<string, string>; annotations: Record<string, string> };
          spec: { containers: { args: string[]; ports: { containerPort: number }[] }[] };
        };
      };
    };
    const pod = deployment.spec.template;
    expect(pod.metadata.labels['app.kubernetes.io/name']).to.equal(keep.regex);
    expect(pod.metadata.annotations['prometheus.io/scrape']).to.equal('true');
    expect(pod.metadata.annotations['prometheus.io/path']).to.equal('/metrics');
    const c = pod.spec.containers[0]!;
    const port = c.args[c.args.indexOf('--metrics-port') + 1];
    expect(pod.metadata.annotations['prometheus.io/port']).to.equal(port);
    expect(String(c.ports[0]!.containerPort)).to.equal(port);
    expect(c.args).to.include('--canary');
  });
});
