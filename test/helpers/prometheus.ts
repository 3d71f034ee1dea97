/**
 * A real Prometheus (Debian's /usr/bin/prometheus) inside a test's network namespace: its own
 * configuration and storage in the test's scratch directory, listening on an address inside the
 * namespace, scraping targets there every second. Queries go through its HTTP API (curl inside
 * the namespace), so dashboards' and alerts' expressions can be evaluated against it as well.
 * Stopped by the test; killed at exit if the test could not (cleanup.ts).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { destroyAtExit } from './cleanup';
import type { Netns } from './netns';
import { waitForAsync } from './wait';

export const PROMETHEUS = '/usr/bin/prometheus';
/** Inside the test's namespace, so it never meets the host's Prometheus (usually :9090). */
export const PROMETHEUS_LISTEN = '127.0.0.1:9090';
const SCRAPE_INTERVAL = '1s';
const STOP_TIMEOUT_MS = 10_000;

export interface PrometheusOptions {
  /** host:port of each target, scraped under job="offloadd" at /metrics. */
  targets: string[];
  /** Rule files to load (alerting or recording rules), absolute paths. */
  ruleFiles?: string[];
  /** Extra labels put on every target (e.g. { node: 'n1' }, as Kubernetes relabelling adds). */
  targetLabels?: Record<string, string>;
}

/** One element of an instant query's result vector. */
export interface Sample {
  metric: Record<string, string>;
  /** The value as Prometheus prints it: a number in a string ("1", "NaN", "+Inf"). */
  value: number;
}

interface QueryAnswer {
  status: 'success' | 'error';
  error?: string;
  data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

export class Prometheus {
  private readonly child: ChildProcess;
  private readonly unregister: () => void;
  private exited = false;
  private readonly output: string[] = [];

  private constructor(
    private readonly ns: Netns,
    readonly dir: string,
  ) {
    this.child = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns.name,
        PROMETHEUS,
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=${PROMETHEUS_LISTEN}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (chunk: Buffer): void => {
      this.output.push(chunk.toString('utf8'));
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.child.on('exit', () => {
      this.exited = true;
    });
    this.unregister = destroyAtExit(this);
  }

  /** Starts Prometheus in `ns` and resolves once it is ready (GET /-/ready answers 200). */
  static async start(ns: Netns, options: PrometheusOptions): Promise<Prometheus> {
    const dir = path.join(ns.tmp, `prometheus-${process.hrtime.bigint()}`);
    fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
    const labels = options.targetLabels ?? {};
    const config = {
      global: { scrape_interval: SCRAPE_INTERVAL, evaluation_interval: SCRAPE_INTERVAL },
      rule_files: options.ruleFiles ?? [],
      scrape_configs: [{ job_name: 'offloadd', static_configs: [{ targets: options.targets, labels }] }],
    };
    // JSON is YAML: no quoting rules to get wrong.
    fs.writeFileSync(path.join(dir, 'prometheus.yml'), JSON.stringify(config, null, 2));
    const prometheus = new Prometheus(ns, dir);
    try {
      await waitForAsync(async () => {
        if (prometheus.exited) throw new Error(`prometheus exited:\n${prometheus.output.join('')}`);
        return (await prometheus.get('/-/ready')).startsWith('Prometheus');
      }, 'Prometheus to be ready');
    } catch (error) {
      await prometheus.stop();
      throw error;
    }
    return prometheus;
  }

  /** An instant PromQL query now; the result vector (throws on a query error or a non-vector result). */
  async query(expression: string): Promise<Sample[]> {
    const text = await this.get('/api/v1/query', { query: expression });
    const answer = JSON.parse(text) as QueryAnswer;
    if (answer.status !== 'success' || !answer.data)
      throw new Error(`query ${expression} failed: ${answer.error ?? text}`);
    if (answer.data.resultType !== 'vector')
      throw new Error(`query ${expression} gave a ${answer.data.resultType}, not a vector`);
    return answer.data.result.map((item) => ({ metric: item.metric, value: Number(item.value[1]) }));
  }

  /** Waits until an instant query returns a vector `accept` takes; returns that vector. */
  async waitForQuery(expression: string, accept: (vector: Sample[]) => boolean, timeoutMs = 30_000): Promise<Sample[]> {
    let last: Sample[] = [];
    return waitForAsync(
      async () => {
        last = await this.query(expression);
        return accept(last) ? last : null;
      },
      `${expression} to be as expected (last: ${JSON.stringify(last)})`,
      timeoutMs,
    );
  }

  async stop(): Promise<void> {
    if (!this.exited) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    this.unregister();
  }

  destroySync(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }

  /** GET on its HTTP API from inside the namespace; the body. */
  private get(urlPath: string, form?: Record<string, string>): Promise<string> {
    const args = ['netns', 'exec', this.ns.name, 'curl', '-sS', '--max-time', '10'];
    if (form) {
      args.push('-G');
      for (const [key, value] of Object.entries(form)) args.push('--data-urlencode', `${key}=${value}`);
    }
    args.push(`http://${PROMETHEUS_LISTEN}${urlPath}`);
    return new Promise((resolve, reject) => {
      execFile('ip', args, { encoding: 'utf8' }, (error, stdout, stderr) => {
        if (error) reject(new Error(`curl ${urlPath}: ${stderr.trim() || error.message}`));
        else resolve(stdout);
      });
    });
  }
}

/** An instant PromQL query against `prometheus`: the result vector (for dashboard and alert checks). */
export function instantQuery(prometheus: Prometheus, expression: string): Promise<Sample[]> {
  return prometheus.query(expression);
}
