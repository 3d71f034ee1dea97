/**
 * deploy/kubernetes, validated offline: every manifest the kustomizations list validates against the
 * Kubernetes (and Prometheus Operator) API schemas of the `kubernetes-models` packages, the
 * DaemonSet has exactly the least-privilege settings the design asks for, and the generated
 * manifests (policy ConfigMap, PrometheusRule, dashboard ConfigMap) are what
 * scripts/deploy-generate.js makes from their one source. Broken manifests must fail both checks.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT } from '../helpers/promql';

const KUSTOMIZE_ROOT = path.join(REPO_ROOT, 'deploy', 'kubernetes');
const METRICS_PORT = 9747;
/** The image `npm run image` builds from this tree: the manifests follow the release. */
const IMAGE = `localhost/offloadd:${(JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version}`;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are plain YAML data, checked field by field
type Manifest = Record<string, any>;
type Model = new (data: unknown) => { validate(): void };

/**
 * kubernetes-models is ESM-only with an `import`-only exports map, and tsc compiles this file to
 * CommonJS, turning `import()` into `require()`, which that map refuses. A Function keeps the real
 * dynamic import.
 */
// eslint-disable-next-line @typescript-eslint/no-implied-eval -- see above: a literal import() would become require()
const importEsm = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

const MODEL_MODULES: Record<string, string> = {
  'v1/Namespace': 'kubernetes-models/v1/Namespace',
  'v1/ConfigMap': 'kubernetes-models/v1/ConfigMap',
  'v1/ServiceAccount': 'kubernetes-models/v1/ServiceAccount',
  'apps/v1/DaemonSet': 'kubernetes-models/apps/v1/DaemonSet',
  'monitoring.coreos.com/v1/PodMonitor': '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor',
  'monitoring.coreos.com/v1/PrometheusRule':
    '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule',
};

async function modelFor(manifest: Manifest): Promise<Model> {
  const key = `${String(manifest.apiVersion)}/${String(manifest.kind)}`;
  const specifier = MODEL_MODULES[key];
  if (specifier === undefined) throw new Error(`no schema for ${key}: add it to MODEL_MODULES`);
  const module = (await importEsm(specifier)) as Record<string, Model>;
  const model = module[String(manifest.kind)];
  if (model === undefined) throw new Error(`${specifier} exports no ${String(manifest.kind)}`);
  return model;
}

/** Throws the schema's complaint when the manifest does not validate. */
async function validate(manifest: Manifest): Promise<void> {
  const model = await modelFor(manifest);
  new model(manifest).validate();
}

/** A list field of untyped manifest data (absent: empty). */
function list(value: unknown): Manifest[] {
  return Array.isArray(value) ? (value as Manifest[]) : [];
}

/** Every resource file a kustomization lists, following nested kustomizations. */
function kustomizationFiles(dir: string): string[] {
  const kustomization = parseYaml(fs.readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8')) as {
    resources: string[];
  };
  return kustomization.resources.flatMap((resource) => {
    const target = path.join(dir, resource);
    return fs.statSync(target).isDirectory() ? kustomizationFiles(target) : [target];
  });
}

function readManifests(file: string): Manifest[] {
  const text = fs.readFileSync(file, 'utf8');
  return text
    .split(/^---$/m)
    .filter((part) => part.trim() !== '')
    .map((part) => parseYaml(part) as Manifest);
}

function allManifests(): { file: string; manifest: Manifest }[] {
  return kustomizationFiles(KUSTOMIZE_ROOT).flatMap((file) =>
    readManifests(file).map((manifest) => ({ file: path.relative(REPO_ROOT, file), manifest })),
  );
}

function find(kind: string, name: string): Manifest {
  const found = allManifests().find((m) => m.manifest.kind === kind && m.manifest.metadata?.name === name);
  assert.ok(found, `no ${kind} ${name} in deploy/kubernetes`);
  return structuredClone(found.manifest);
}

/** What the design asks of the DaemonSet; [] when all is there. */
function securityProblems(ds: Manifest): string[] {
  const problems: string[] = [];
  const check = (ok: boolean, what: string): void => {
    if (!ok) problems.push(what);
  };
  const pod = ds.spec?.template?.spec ?? {};
  const containers: Manifest[] = pod.containers ?? [];
  check(containers.length === 1, 'exactly one container');
  check((pod.initContainers ?? []).length === 0 && (pod.ephemeralContainers ?? []).length === 0, 'no other containers');
  check(pod.hostNetwork === true, 'hostNetwork: true');
  check(pod.dnsPolicy === 'ClusterFirstWithHostNet', 'dnsPolicy: ClusterFirstWithHostNet');
  // hostPID: attribution names the host's processes from the host's /proc (see daemonset.yaml).
  check(pod.hostPID === true, 'hostPID: true');
  check(pod.hostIPC !== true, 'no hostIPC');
  check(pod.priorityClassName === 'system-node-critical', 'priorityClassName: system-node-critical');
  check(
    JSON.stringify(pod.tolerations) === JSON.stringify([{ operator: 'Exists' }]),
    'tolerations: [{operator: Exists}]',
  );
  check(pod.automountServiceAccountToken === false, 'automountServiceAccountToken: false');
  check(typeof pod.terminationGracePeriodSeconds === 'number', 'terminationGracePeriodSeconds');
  check(ds.spec?.updateStrategy?.type === 'RollingUpdate', 'updateStrategy RollingUpdate');
  check(ds.spec?.updateStrategy?.rollingUpdate?.maxUnavailable !== undefined, 'rollingUpdate.maxUnavailable');
  for (const c of containers) {
    const sc = c.securityContext ?? {};
    check(sc.privileged === false, 'privileged: false');
    check(sc.allowPrivilegeEscalation === false, 'allowPrivilegeEscalation: false');
    check(sc.readOnlyRootFilesystem === true, 'readOnlyRootFilesystem: true');
    check(sc.runAsUser === 0, 'runAsUser: 0 (see the comment in daemonset.yaml)');
    check(JSON.stringify(sc.capabilities?.drop) === '["ALL"]', 'capabilities.drop: [ALL]');
    check(
      JSON.stringify(sc.capabilities?.add) === '["NET_ADMIN","BPF","PERFMON"]',
      'capabilities.add: [NET_ADMIN, BPF, PERFMON] (attribution) and nothing else',
    );
    check(
      (sc.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type) === 'RuntimeDefault',
      'seccompProfile: RuntimeDefault',
    );
    check(sc.seccompProfile?.type === undefined || sc.seccompProfile.type === 'RuntimeDefault', 'no other seccomp');
    check(c.image === IMAGE, `image ${IMAGE}`);
    check(
      JSON.stringify(c.args) ===
        JSON.stringify([
          '--policy',
          '/etc/offloadd/policy.yaml',
          '--watch-policy',
          '--metrics-listen',
          `0.0.0.0:${METRICS_PORT}`,
          '--log-target',
          'auto',
        ]),
      'args',
    );
    check(
      JSON.stringify(c.readinessProbe?.exec?.command) === '["/usr/bin/offloadctl","check"]',
      'readiness: offloadctl check',
    );
    check(
      JSON.stringify(c.livenessProbe?.exec?.command) === '["/usr/bin/offloadctl","status"]',
      'liveness: offloadctl status',
    );
    check(
      c.resources?.requests?.memory !== undefined && c.resources?.limits?.memory !== undefined,
      'memory request and limit',
    );
    check(
      list(c.ports).some((p) => p.name === 'metrics' && p.containerPort === METRICS_PORT),
      `port metrics ${METRICS_PORT}`,
    );
    const mounts = new Map<string, Manifest>(list(c.volumeMounts).map((m) => [String(m.mountPath), m]));
    const volumes = new Map<string, Manifest>(list(pod.volumes).map((v) => [String(v.name), v]));
    for (const hostDir of ['/run/offloadd', '/var/lib/offloadd']) {
      const volume = volumes.get(mounts.get(hostDir)?.name);
      check(
        volume?.hostPath?.path === hostDir && volume?.hostPath?.type === 'DirectoryOrCreate',
        `hostPath ${hostDir} (DirectoryOrCreate) mounted at ${hostDir}`,
      );
    }
    const policy = mounts.get('/etc/offloadd');
    check(
      policy?.subPath === undefined && volumes.get(policy?.name)?.configMap?.name === 'offloadd-policy',
      'ConfigMap offloadd-policy mounted as the directory /etc/offloadd (no subPath: kubelet would not update it)',
    );
    const hostPaths = [...volumes.values()].filter((v) => v.hostPath !== undefined).map((v) => String(v.hostPath.path));
    check(hostPaths.sort().join() === '/run/offloadd,/var/lib/offloadd', 'no other hostPath');
  }
  return problems;
}

describe('deploy/kubernetes: manifests validated offline', function () {
  it('the kustomizations list every YAML file of their directories, and nothing missing', () => {
    const listed = new Set(kustomizationFiles(KUSTOMIZE_ROOT));
    for (const dir of ['core', 'monitoring']) {
      for (const name of fs.readdirSync(path.join(KUSTOMIZE_ROOT, dir))) {
        if (name === 'kustomization.yaml' || !name.endsWith('.yaml')) continue;
        assert.ok(listed.has(path.join(KUSTOMIZE_ROOT, dir, name)), `${dir}/${name} is in no kustomization`);
      }
    }
  });

  it('every manifest validates against the API schemas (kubernetes-models)', async () => {
    const manifests = allManifests();
    assert.deepEqual(manifests.map((m) => String(m.manifest.kind)).sort(), [
      'ConfigMap',
      'ConfigMap',
      'DaemonSet',
      'Namespace',
      'PodMonitor',
      'PrometheusRule',
      'ServiceAccount',
    ]);
    for (const { file, manifest } of manifests) {
      await validate(manifest).catch((error: Error) => assert.fail(`${file}: ${error.message}`));
      // No namespace: in the kustomizations (the dashboard goes elsewhere), so each namespaced object names its own.
      if (manifest.kind !== 'Namespace') assert.ok(manifest.metadata?.namespace, `${file}: namespace written in it`);
    }
  });

  it('the DaemonSet has the least-privilege settings, hostPaths, probes and args of the design', () => {
    assert.deepEqual(securityProblems(find('DaemonSet', 'offloadd')), []);
  });

  it('a broken DaemonSet fails schema validation', async () => {
    const mutations: [string, (ds: Manifest) => void][] = [
      ['privileged as a string', (ds) => (ds.spec.template.spec.containers[0].securityContext.privileged = 'false')],
      ['no containers', (ds) => delete ds.spec.template.spec.containers],
      ['no selector', (ds) => delete ds.spec.selector],
      ['hostNetwork as a string', (ds) => (ds.spec.template.spec.hostNetwork = 'yes')],
      ['port as a string', (ds) => (ds.spec.template.spec.containers[0].ports[0].containerPort = 'metrics')],
      [
        'capabilities.add not a list',
        (ds) => (ds.spec.template.spec.containers[0].securityContext.capabilities.add = 'NET_ADMIN'),
      ],
    ];
    for (const [what, mutate] of mutations) {
      const ds = find('DaemonSet', 'offloadd');
      mutate(ds);
      await assert.rejects(validate(ds), `${what}: accepted`);
    }
  });

  it('a DaemonSet that is valid but not least-privilege fails the security check', () => {
    const mutations: [string, (ds: Manifest) => void][] = [
      ['privileged', (ds) => (ds.spec.template.spec.containers[0].securityContext.privileged = true)],
      [
        'SYS_ADMIN added',
        (ds) => {
          const capabilities = ds.spec.template.spec.containers[0].securityContext.capabilities as Manifest;
          capabilities.add = ['NET_ADMIN', 'SYS_ADMIN'];
        },
      ],
      ['capabilities kept', (ds) => delete ds.spec.template.spec.containers[0].securityContext.capabilities.drop],
      ['writable root', (ds) => (ds.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem = false)],
      ['escalation', (ds) => delete ds.spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation],
      ['unconfined', (ds) => (ds.spec.template.spec.containers[0].securityContext.seccompProfile.type = 'Unconfined')],
      ['hostIPC', (ds) => (ds.spec.template.spec.hostIPC = true)],
      ['no hostPID', (ds) => delete ds.spec.template.spec.hostPID],
      [
        'host root mounted',
        (ds) => void list(ds.spec.template.spec.volumes).push({ name: 'root', hostPath: { path: '/' } }),
      ],
      ['policy by subPath', (ds) => (ds.spec.template.spec.containers[0].volumeMounts[2].subPath = 'policy.yaml')],
      ['token mounted', (ds) => (ds.spec.template.spec.automountServiceAccountToken = true)],
    ];
    for (const [what, mutate] of mutations) {
      const ds = find('DaemonSet', 'offloadd');
      mutate(ds);
      assert.notDeepEqual(securityProblems(ds), [], `${what}: passed the security check`);
    }
  });

  it('the ServiceAccount mounts no token and the namespace admits the pod (Pod Security: privileged)', () => {
    assert.equal(find('ServiceAccount', 'offloadd').automountServiceAccountToken, false);
    const labels = find('Namespace', 'offloadd').metadata.labels;
    assert.equal(labels['pod-security.kubernetes.io/enforce'], 'privileged');
  });

  it('the top kustomization pins the same image as the DaemonSet, so core/ alone applies it too', () => {
    const top = parseYaml(fs.readFileSync(path.join(KUSTOMIZE_ROOT, 'kustomization.yaml'), 'utf8')) as Manifest;
    const [image] = top.images as Manifest[];
    assert.equal(`${image?.newName}:${image?.newTag}`, IMAGE);
    assert.equal(`${image?.name}:${image?.newTag}`, IMAGE);
  });

  it('the PodMonitor scrapes the DaemonSet pods on port "metrics" as job offloadd and adds `node`', () => {
    const pm = find('PodMonitor', 'offloadd');
    const ds = find('DaemonSet', 'offloadd');
    assert.deepEqual(pm.spec.selector.matchLabels, ds.spec.selector.matchLabels);
    assert.equal(
      ds.spec.template.metadata.labels[pm.spec.jobLabel],
      'offloadd',
      'job="offloadd", as the alerts expect',
    );
    assert.deepEqual(pm.spec.namespaceSelector.matchNames, [ds.metadata.namespace]);
    const [endpoint] = pm.spec.podMetricsEndpoints as Manifest[];
    assert.equal(endpoint?.port, 'metrics');
    assert.ok(
      (endpoint?.relabelings as Manifest[]).some(
        (r) =>
          JSON.stringify(r.sourceLabels) === '["__meta_kubernetes_pod_node_name"]' &&
          r.targetLabel === 'node' &&
          (r.action ?? 'replace') === 'replace',
      ),
      'relabelling __meta_kubernetes_pod_node_name -> node',
    );
  });

  describe('kustomize build (kubectl kustomize, offline)', function () {
    before(function () {
      const probe = spawnSync('kubectl', ['kustomize', '--help'], { encoding: 'utf8' });
      if (probe.error !== undefined || probe.status !== 0) {
        // eslint-disable-next-line no-console -- say why these are skipped rather than pass silently
        console.log('    (kubectl not installed: kustomize build not checked)');
        this.skip();
      }
    });

    function build(dir: string): Manifest[] {
      const result = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
      assert.equal(result.status, 0, result.stderr);
      return result.stdout
        .split(/^---$/m)
        .filter((part) => part.trim() !== '')
        .map((part) => parseYaml(part) as Manifest);
    }

    it('deploy/kubernetes builds to exactly the listed manifests, each valid', async () => {
      const built = build(KUSTOMIZE_ROOT);
      const key = (m: Manifest): string =>
        `${String(m.kind)} ${String(m.metadata?.namespace)}/${String(m.metadata?.name)}`;
      assert.deepEqual(
        built.map(key).sort(),
        allManifests()
          .map((m) => key(m.manifest))
          .sort(),
      );
      for (const manifest of built) await validate(manifest);
      const ds = built.find((m) => m.kind === 'DaemonSet') as Manifest;
      assert.deepEqual(securityProblems(ds), []);
      const policy = built.find((m) => m.metadata?.name === 'offloadd-policy') as Manifest;
      assert.equal(policy.data['policy.yaml'], fs.readFileSync(path.join(REPO_ROOT, 'policy', 'default.yaml'), 'utf8'));
    });

    it('deploy/kubernetes/core builds without the Prometheus Operator kinds', () => {
      const kinds = build(path.join(KUSTOMIZE_ROOT, 'core')).map((m) => String(m.kind));
      assert.deepEqual(kinds.sort(), ['ConfigMap', 'DaemonSet', 'Namespace', 'ServiceAccount']);
    });
  });

  describe('generated manifests have one source each', () => {
    it('scripts/deploy-generate.js --check finds nothing stale', () => {
      const result = spawnSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'deploy-generate.js'), '--check'], {
        encoding: 'utf8',
      });
      assert.equal(result.status, 0, result.stderr);
    });

    it('ConfigMap offloadd-policy carries policy/default.yaml byte for byte', () => {
      assert.equal(
        find('ConfigMap', 'offloadd-policy').data['policy.yaml'],
        fs.readFileSync(path.join(REPO_ROOT, 'policy', 'default.yaml'), 'utf8'),
      );
    });

    it('the PrometheusRule carries exactly the groups of deploy/prometheus/offloadd.rules.yml', () => {
      const rules = parseYaml(
        fs.readFileSync(path.join(REPO_ROOT, 'deploy', 'prometheus', 'offloadd.rules.yml'), 'utf8'),
      );
      assert.deepEqual(find('PrometheusRule', 'offloadd').spec.groups, rules.groups);
    });

    it('the dashboard ConfigMap carries deploy/grafana/offloadd.json where rancher-monitoring imports it', () => {
      const cm = find('ConfigMap', 'offloadd-dashboard');
      assert.equal(cm.metadata.namespace, 'cattle-dashboards');
      assert.equal(cm.metadata.labels.grafana_dashboard, '1');
      assert.equal(
        cm.data['offloadd.json'],
        fs.readFileSync(path.join(REPO_ROOT, 'deploy', 'grafana', 'offloadd.json'), 'utf8'),
      );
    });

    it('the dashboard takes its data source from a template variable', () => {
      const dashboard = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'deploy', 'grafana', 'offloadd.json'), 'utf8'));
      const variable = list(dashboard.templating.list).find((v) => v.type === 'datasource');
      assert.equal(variable?.query, 'prometheus');
      const uids = new Set<string>();
      const visit = (panels: Manifest[]): void => {
        for (const panel of panels) {
          if (panel.datasource) uids.add(panel.datasource.uid);
          for (const target of panel.targets ?? []) uids.add(target.datasource?.uid);
          visit(panel.panels ?? []);
        }
      };
      visit(dashboard.panels);
      assert.deepEqual([...uids], [`\${${variable.name}}`]);
    });
  });
});
