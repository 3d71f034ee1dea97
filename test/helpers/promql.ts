/**
 * Every PromQL expression offloadd ships: the Grafana dashboard's panel queries
 * (deploy/grafana/offloadd.json), the alert rules (deploy/prometheus/offloadd.rules.yml) and the
 * ```promql blocks of docs/HARVESTER.md, as
 * written and ready to send to Prometheus (Grafana's variables substituted). Used by the offline
 * parse check (test/unit/deploy-prometheus.test.ts) and by tests that run each query against a
 * real Prometheus scraping a real daemon.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
export const DASHBOARD_FILE = path.join(REPO_ROOT, 'deploy', 'grafana', 'offloadd.json');
export const RULES_FILE = path.join(REPO_ROOT, 'deploy', 'prometheus', 'offloadd.rules.yml');
export const DOCS_FILE = path.join(REPO_ROOT, 'docs', 'HARVESTER.md');

export interface PromqlExpression {
  /** Where it comes from. */
  origin: 'dashboard' | 'rules' | 'docs';
  /** Dashboard: `panel title / refId`; rules: the alert (or recording rule) name; docs: `file #n`. */
  name: string;
  /** The expression as written, Grafana variables included. */
  expr: string;
  /** The expression to send to Prometheus: `expr` with Grafana's variables replaced (GRAFANA_VARIABLES). */
  query: string;
  /** Needs kube-state-metrics series (kube_*) to return anything: none in a test without Kubernetes. */
  needsKubeStateMetrics: boolean;
  /**
   * Returns data on a healthy fleet. False for alert expressions (they return series only while
   * something is wrong) and for dashboard panels that list what is wrong (`== 0`, `> 0`).
   */
  returnsDataWhenHealthy: boolean;
}

/**
 * What Grafana puts in place of each variable the dashboard uses: the "All" value of $node (so
 * plain-Prometheus targets without a `node` label match too) and typical intervals.
 */
export const GRAFANA_VARIABLES: Readonly<Record<string, string>> = {
  node: '.*',
  __rate_interval: '5m',
  __interval: '1m',
  __range: '24h',
};

/** `$name`, `${name}` and `[[name]]` replaced by `values` (longest names first, so `$__range` is not `$__r…`). */
export function substituteGrafanaVariables(
  expr: string,
  values: Readonly<Record<string, string>> = GRAFANA_VARIABLES,
): string {
  let result = expr;
  for (const name of Object.keys(values).sort((a, b) => b.length - a.length)) {
    const value = values[name] as string;
    result = result.split(`\${${name}}`).join(value).split(`[[${name}]]`).join(value);
    result = result.replace(new RegExp(`\\$${name}(?![A-Za-z0-9_])`, 'g'), () => value);
  }
  const left = /\$\{?\w+|\[\[\w+\]\]/.exec(result);
  if (left) throw new Error(`no value for Grafana variable ${left[0]} in: ${expr}`);
  return result;
}

interface DashboardPanel {
  title?: string;
  targets?: { expr?: string; refId?: string }[];
  panels?: DashboardPanel[];
}

/**
 * A panel that lists only what is wrong (`... == 0`, `... > 0`, also inside an aggregation such as
 * `count by (node) (... == 0)`, without `or vector(0)`) is empty on a healthy fleet.
 */
function listsOnlyProblems(expr: string): boolean {
  return /(==|>)\s*0\s*\)*$/.test(expr.trim());
}

export function dashboardExpressions(file: string = DASHBOARD_FILE): PromqlExpression[] {
  const dashboard = JSON.parse(fs.readFileSync(file, 'utf8')) as { panels?: DashboardPanel[] };
  const result: PromqlExpression[] = [];
  const visit = (panels: DashboardPanel[]): void => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        if (target.expr === undefined) continue;
        const query = substituteGrafanaVariables(target.expr);
        result.push({
          origin: 'dashboard',
          name: `${panel.title ?? '(untitled)'} / ${target.refId ?? '?'}`,
          expr: target.expr,
          query,
          needsKubeStateMetrics: /\bkube_/.test(query),
          returnsDataWhenHealthy: !listsOnlyProblems(query),
        });
      }
      visit(panel.panels ?? []);
    }
  };
  visit(dashboard.panels ?? []);
  return result;
}

export function ruleExpressions(file: string = RULES_FILE): PromqlExpression[] {
  const rules = parseYaml(fs.readFileSync(file, 'utf8')) as {
    groups: { rules: { alert?: string; record?: string; expr: string }[] }[];
  };
  return rules.groups.flatMap((group) =>
    group.rules.map((rule) => ({
      origin: 'rules' as const,
      name: rule.alert ?? rule.record ?? '(unnamed)',
      expr: rule.expr,
      query: rule.expr,
      needsKubeStateMetrics: /\bkube_/.test(rule.expr),
      returnsDataWhenHealthy: rule.alert === undefined,
    })),
  );
}

/** The ```promql code blocks of a Markdown file, one expression each. */
export function docsExpressions(file: string = DOCS_FILE): PromqlExpression[] {
  const text = fs.readFileSync(file, 'utf8');
  return [...text.matchAll(/^```promql\n([\s\S]*?)^```$/gm)].map((match, index) => {
    const query = (match[1] as string).trim();
    return {
      origin: 'docs' as const,
      name: `${path.relative(REPO_ROOT, file)} #${index + 1}`,
      expr: query,
      query,
      needsKubeStateMetrics: /\bkube_/.test(query),
      returnsDataWhenHealthy: !listsOnlyProblems(query),
    };
  });
}

/** Every PromQL expression in the dashboard, the rules file and docs/HARVESTER.md. */
export function listPromqlExpressions(): PromqlExpression[] {
  return [...dashboardExpressions(), ...ruleExpressions(), ...docsExpressions()];
}
