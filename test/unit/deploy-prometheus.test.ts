/**
 * The Prometheus side of deploy/: the alert rules pass `promtool check rules` and their unit tests
 * (`promtool test rules`, deploy/prometheus/offloadd.rules.test.yml), every alert carries the
 * annotations an on-call person needs and a runbook section that exists, the plain-Prometheus
 * example config is valid, and every dashboard expression parses.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify as stringifyYaml, parse as parseYaml } from 'yaml';
import {
  dashboardExpressions,
  docsExpressions,
  listPromqlExpressions,
  REPO_ROOT,
  RULES_FILE,
  substituteGrafanaVariables,
} from '../helpers/promql';

const PROMTOOL = '/usr/bin/promtool';
const PROMETHEUS_DIR = path.join(REPO_ROOT, 'deploy', 'prometheus');

interface Alert {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function promtool(...args: string[]): { status: number | null; output: string } {
  const result = spawnSync(PROMTOOL, args, { cwd: REPO_ROOT, encoding: 'utf8' });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

function alerts(): Alert[] {
  const rules = parseYaml(fs.readFileSync(RULES_FILE, 'utf8')) as { groups: { rules: Alert[] }[] };
  return rules.groups.flatMap((group) => group.rules);
}

/** GitHub's heading anchors: lower case, punctuation other than - and _ dropped, spaces to -. */
function anchors(markdown: string): Set<string> {
  const result = new Set<string>();
  for (const match of markdown.matchAll(/^#{1,6}\s+(.+?)\s*$/gm)) {
    const text = (match[1] as string).replace(/`/g, '');
    result.add(
      text
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-'),
    );
  }
  return result;
}

describe('deploy/prometheus: alert rules and dashboard expressions', function () {
  before(function () {
    if (!fs.existsSync(PROMTOOL)) this.skip(); // CI installs prometheus (.ci/run); say so rather than pass
  });

  it('promtool check rules accepts the rules file', () => {
    const { status, output } = promtool('check', 'rules', RULES_FILE);
    assert.equal(status, 0, output);
  });

  it('promtool test rules: every alert fires on its input series and stays quiet on the healthy ones', () => {
    const { status, output } = promtool('test', 'rules', path.join(PROMETHEUS_DIR, 'offloadd.rules.test.yml'));
    assert.equal(status, 0, output);
    assert.match(output, /SUCCESS/);
  });

  it('the unit tests cover every alert, firing and not firing', () => {
    const tests = parseYaml(fs.readFileSync(path.join(PROMETHEUS_DIR, 'offloadd.rules.test.yml'), 'utf8')) as {
      tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
    };
    const cases = tests.tests.flatMap((test) => test.alert_rule_test ?? []);
    for (const { alert } of alerts()) {
      const own = cases.filter((c) => c.alertname === alert);
      assert.ok(
        own.some((c) => c.exp_alerts.length > 0),
        `${alert}: no test case where it fires`,
      );
      assert.ok(
        own.some((c) => c.exp_alerts.length === 0),
        `${alert}: no test case where it stays quiet`,
      );
    }
  });

  it('every alert has a severity, a summary naming where, a description and a runbook section that exists', () => {
    const docs = new Map<string, Set<string>>();
    for (const rule of alerts()) {
      assert.match(rule.labels?.severity ?? '', /^(critical|warning)$/, `${rule.alert}: severity`);
      const { summary = '', description = '', runbook_url: runbook = '' } = rule.annotations ?? {};
      assert.ok(summary.length > 0 && description.length > 0, `${rule.alert}: summary and description`);
      // Per-daemon and per-interface alerts name the node (falling back to instance), per-interface
      // ones the interface too; the fleet-wide ones (a count, an absence) have no node to name.
      if (/offloadd_interface_/.test(rule.expr))
        assert.match(summary, /\$labels\.interface/, `${rule.alert}: interface`);
      if (/offloadd_|up\{/.test(rule.expr) && !/absent\(/.test(rule.expr)) {
        assert.match(summary, /\$labels\.node/, `${rule.alert}: node`);
      }
      const [file, anchor] = runbook.split('#') as [string, string | undefined];
      assert.ok(anchor, `${rule.alert}: runbook_url ${runbook} has no section`);
      if (!docs.has(file)) docs.set(file, anchors(fs.readFileSync(path.join(REPO_ROOT, file), 'utf8')));
      assert.ok(docs.get(file)?.has(anchor), `${rule.alert}: ${file} has no section #${anchor}`);
    }
  });

  it('promtool check config accepts the plain-Prometheus example (scrape config and rule_files)', () => {
    const { status, output } = promtool('check', 'config', path.join(PROMETHEUS_DIR, 'prometheus.example.yml'));
    assert.equal(status, 0, output);
  });

  it('every dashboard and docs expression parses (as a recording rule, Grafana variables substituted)', () => {
    const expressions = [...dashboardExpressions(), ...docsExpressions()];
    assert.ok(expressions.filter((e) => e.origin === 'dashboard').length >= 15, `found: ${expressions.length}`);
    assert.ok(expressions.filter((e) => e.origin === 'docs').length >= 4, `found: ${expressions.length}`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-dashboard-'));
    try {
      const file = path.join(dir, 'dashboard.rules.yml');
      const rules = expressions.map((e, i) => ({ record: `offloadd:dashboard_expression_${i}`, expr: e.query }));
      fs.writeFileSync(file, stringifyYaml({ groups: [{ name: 'dashboard', rules }] }));
      const { status, output } = promtool('check', 'rules', file);
      assert.equal(status, 0, `${output}\n${expressions.map((e, i) => `${i}: ${e.name}: ${e.query}`).join('\n')}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a broken expression fails that check (the check can fail)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-dashboard-'));
    try {
      const file = path.join(dir, 'broken.rules.yml');
      const broken = substituteGrafanaVariables(
        'sum by (node (rate(offloadd_drifts_total{node=~"$node"}[$__rate_interval]))',
      );
      fs.writeFileSync(file, stringifyYaml({ groups: [{ name: 'g', rules: [{ record: 'r', expr: broken }] }] }));
      assert.notEqual(promtool('check', 'rules', file).status, 0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('listPromqlExpressions lists the rules, the dashboard and the docs, with no Grafana variable left', () => {
    const all = listPromqlExpressions();
    assert.deepEqual(
      all.filter((e) => e.origin === 'rules').map((e) => e.name),
      alerts().map((a) => a.alert),
    );
    for (const e of all) assert.doesNotMatch(e.query, /\$|\[\[/, e.name);
    assert.throws(() => substituteGrafanaVariables('up{instance=~"$instance"}'), /\$instance/);
  });
});
