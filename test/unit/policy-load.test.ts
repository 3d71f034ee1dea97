import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { PolicyError } from '../../src/errors';
import {
  ETHTOOL_ALIASES,
  KNOWN_KERNEL_FEATURES,
  RETIRED_KERNEL_FEATURES,
  didYouMean,
  editDistance,
  resolveFeatureName,
  suggestFeatureName,
} from '../../src/policy/feature-names';
import {
  BUILT_IN_POLICY_LABEL,
  defaultPolicyPath,
  loadDefaultPolicy,
  loadPolicyFile,
  parsePolicy,
} from '../../src/policy/load';
import { MAX_POLICY_BYTES } from '../../src/policy/limits';
import type { Policy } from '../../src/policy/types';

const FIXTURES = path.resolve(__dirname, '../../../test/fixtures');
const BAD_DIR = path.join(FIXTURES, 'policy/bad');
const GOOD_DIR = path.join(FIXTURES, 'policy/good');

/** Room for node itself; a loader that slurps /dev/zero dies at this cap instead of eating the host. */
const CHILD_ADDRESS_SPACE_BYTES = 1_500_000_000;
/** A safety net only: the child answers in milliseconds unless the loader blocks. */
const CHILD_SAFETY_TIMEOUT_MS = 20_000;

function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

/** The ETH_SS_FEATURES strings of a veth on Linux 6.18, as the kernel returns them (with empty slots). */
const HOST_FEATURES = readJson<string[]>(path.join(FIXTURES, 'host-features.json'));

interface BadCase {
  line: number;
  column: number;
  message: string;
  key?: string;
  hint?: string;
}

interface GoodCase {
  mode: string;
  sweepIntervalSec: number;
  /** Absent: the default (on). */
  attribution?: 'on' | 'off';
  rules: Array<{ name: string; mode: string | null; line: number; features: Record<string, string> }>;
  warnings: string[];
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort();
}

function catchPolicyError(load: () => unknown): PolicyError {
  try {
    load();
  } catch (error) {
    assert.ok(error instanceof PolicyError, `expected a PolicyError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the policy to be refused');
}

function minimalPolicy(features: string, match = 'driver: bnxt_en'): string {
  return `rules:\n  - name: r\n    match: { ${match} }\n    features: { ${features} }\n`;
}

describe('policy loading', () => {
  describe('refuses bad policies with line, column, key and hint', () => {
    const expected = readJson<Record<string, BadCase>>(path.join(BAD_DIR, 'expected.json'));

    it('has an expectation for every bad fixture and a fixture for every expectation', () => {
      assert.deepEqual(yamlFiles(BAD_DIR), Object.keys(expected).sort());
    });

    for (const [file, want] of Object.entries(expected)) {
      it(file, () => {
        const fixture = path.join(BAD_DIR, file);
        const error = catchPolicyError(() => loadPolicyFile(fixture, HOST_FEATURES));
        assert.equal(error.code, 'ERR_POLICY');
        assert.equal(error.file, fixture);
        assert.deepEqual(error.position, { line: want.line, column: want.column }, error.toString());
        assert.ok(error.message.includes(want.message), `message: ${error.message}`);
        if (want.key !== undefined) assert.equal(error.key, want.key);
        assert.ok(error.hint !== undefined && error.hint.length > 0, 'every error says what to do');
        if (want.hint !== undefined) assert.ok(error.hint.includes(want.hint), `hint: ${error.hint}`);
        assert.ok(error.toString().startsWith(`${fixture}:${want.line}:${want.column}: `));
      });
    }
  });

  it('near-blanket rules are refused: negated classes, and rules that together match every interface (issue 20 #12)', () => {
    const refused = (text: string): string =>
      catchPolicyError(() => parsePolicy(text, 'p.yaml', HOST_FEATURES)).message;
    const rule = (name: string, match: string): string =>
      `  - name: ${name}\n    match: ${match}\n    features: { gso: off }\n`;
    for (const pattern of ['[!x]*', '[^x]*', '[!l]*', '[!a-k]*', '?*[!z]', '[!.]*']) {
      assert.match(
        refused(`rules:\n${rule('r', `{ name: "${pattern}" }`)}`),
        /matches nearly every interface/,
        pattern,
      );
    }
    assert.match(
      refused(`rules:\n${rule('a', '{ name: "[a-m]*" }')}${rule('b', '{ name: "[!a-m]*" }')}`),
      /nearly every interface/,
    );
    assert.match(
      refused(
        `rules:\n${rule('a', '{ kind: [veth, tun] }')}${rule('b', '{ kind: bridge }')}${rule('c', '{ name: "e*" }')}`,
      ),
      /rules "a", "b", "c" together match nearly every interface/,
    );
    // Targeted rules still load, and broad still opts in.
    parsePolicy(`rules:\n${rule('virtual', '{ kind: [veth, tun, bridge] }')}`, 'p.yaml', HOST_FEATURES);
    parsePolicy(`rules:\n${rule('v', '{ name: "v*" }')}${rule('b', '{ driver: bnxt_en }')}`, 'p.yaml', HOST_FEATURES);
    parsePolicy(
      'rules:\n  - name: lab\n    broad: "lab host"\n    match: { name: "[!x]*" }\n    features: { gso: off }\n',
      'p.yaml',
      HOST_FEATURES,
    );
  });

  describe('accepts good policies', () => {
    const expected = readJson<Record<string, GoodCase>>(path.join(GOOD_DIR, 'expected.json'));

    it('has an expectation for every good fixture and a fixture for every expectation', () => {
      assert.deepEqual(yamlFiles(GOOD_DIR), Object.keys(expected).sort());
    });

    for (const [file, want] of Object.entries(expected)) {
      it(file, () => {
        const policy = loadPolicyFile(path.join(GOOD_DIR, file), HOST_FEATURES);
        assert.equal(policy.mode, want.mode);
        assert.equal(policy.sweepIntervalSec, want.sweepIntervalSec);
        assert.equal(policy.attribution, (want.attribution ?? 'on') === 'on');
        const rules = policy.rules.map((rule) => ({
          name: rule.name,
          mode: rule.mode,
          line: rule.position.line,
          features: Object.fromEntries(
            rule.features.map((w) => [w.feature, `${w.on ? 'on' : 'off'}${w.explicit ? '' : ' (alias)'}`]),
          ),
        }));
        assert.deepEqual(rules, want.rules);
        assert.deepEqual(
          policy.warnings.map((w) => w.key),
          want.warnings,
        );
      });
    }

    it('fills defaults for everything left out', () => {
      const policy = parsePolicy(minimalPolicy('gro: off'), 'p.yaml', HOST_FEATURES);
      assert.equal(policy.mode, 'enforce');
      assert.equal(policy.sweepIntervalSec, 300);
      assert.deepEqual(policy.flapping, { maxCorrections: 5, windowSec: 60, maxBackoffSec: 600 });
      assert.deepEqual(policy.ledger, { maxBytes: 16_777_216, keepFiles: 4 });
      assert.equal(policy.path, 'p.yaml');
    });

    it('normalises PCI ids and MAC patterns to lower case', () => {
      const policy = parsePolicy(
        minimalPolicy('gro: off', 'pci: ["0x14E4:0x1750", "14e4:1752:14E4:D752"], mac: "00:0A:F7:*"'),
        'p.yaml',
        HOST_FEATURES,
      );
      const match = policy.rules[0]?.match;
      assert.deepEqual(match?.pci, [
        { vendor: '14e4', device: '1750', subsystemVendor: null, subsystemDevice: null, text: '0x14E4:0x1750' },
        {
          vendor: '14e4',
          device: '1752',
          subsystemVendor: '14e4',
          subsystemDevice: 'd752',
          text: '14e4:1752:14E4:D752',
        },
      ]);
      assert.deepEqual(match?.mac, ['00:0a:f7:*']);
    });

    it('reads on/off as YAML 1.2 strings, YAML 1.1 booleans, true/false and any case', () => {
      for (const [value, on] of [
        ['off', false],
        ['on', true],
        ['"OFF"', false],
        ['On', true],
        ['false', false],
        ['true', true],
      ] as const) {
        for (const header of ['', '%YAML 1.1\n---\n']) {
          const policy = parsePolicy(header + minimalPolicy(`gro: ${value}`), 'p.yaml', HOST_FEATURES);
          assert.equal(policy.rules[0]?.features[0]?.on, on, `${JSON.stringify(header)} gro: ${value}`);
        }
      }
    });

    it('computes the checksum over the bytes', () => {
      const text = minimalPolicy('gro: off');
      const sha = createHash('sha256').update(text).digest('hex');
      assert.equal(parsePolicy(text, 'p.yaml', HOST_FEATURES).checksum, sha);
      const file = path.join(GOOD_DIR, 'minimal.yaml');
      const fileSha = createHash('sha256').update(readFileSync(file)).digest('hex');
      assert.equal(loadPolicyFile(file, HOST_FEATURES).checksum, fileSha);
    });

    it('warns for every feature when the host list is empty, instead of failing', () => {
      const policy = parsePolicy(minimalPolicy('gro: off, tso: off'), 'p.yaml', []);
      assert.deepEqual(policy.rules[0]?.features, []);
      assert.deepEqual(
        policy.warnings.map((w) => w.key),
        ['rules[0].features.gro', 'rules[0].features.tso'],
      );
    });

    it('judges conflicts over every known name, not only the host ones', () => {
      // tx-udp-fragmentation is absent on 6.18, yet `ufo` and it still contradict each other.
      const error = catchPolicyError(() =>
        parsePolicy(minimalPolicy('ufo: off, tx-udp-fragmentation: on'), 'p.yaml', HOST_FEATURES),
      );
      assert.match(error.message, /contradicts ufo: off/);
    });
  });

  describe('the shipped default policy', () => {
    let policy: Policy;
    before(() => {
      policy = loadDefaultPolicy(HOST_FEATURES);
    });

    it('loads cleanly with a real host feature list', () => {
      assert.deepEqual(policy.warnings, []);
      assert.equal(policy.path, BUILT_IN_POLICY_LABEL);
      assert.equal(policy.mode, 'enforce');
      assert.equal(policy.sweepIntervalSec, 300);
    });

    it('turns GRO and GSO off on the BCM57508 only', () => {
      assert.equal(policy.rules.length, 1);
      const rule = policy.rules[0];
      assert.equal(rule?.name, 'bcm57508-gro-gso-off');
      assert.deepEqual(rule?.match.driver, ['bnxt_en']);
      assert.deepEqual(
        rule?.match.pci?.map((p) => `${p.vendor}:${p.device}`),
        ['14e4:1750'],
      );
      assert.deepEqual(rule?.features, [
        { feature: 'rx-gro', on: false, as: 'gro', explicit: true },
        { feature: 'tx-generic-segmentation', on: false, as: 'gso', explicit: true },
      ]);
    });

    it('has a valid commented-out example for the Thor siblings', () => {
      const lines = readFileSync(defaultPolicyPath(), 'utf8').split('\n');
      const start = lines.findIndex((line) => line.startsWith('  # - name: bnxt-thor-family'));
      const length = lines.slice(start).findIndex((line) => line.trim() === '');
      assert.ok(start > 0 && length > 0, 'the example rule is in the default policy');
      const example = lines
        .slice(start, start + length)
        .map((line) => line.replace(/^ {2}# /, '  '))
        .join('\n');
      const uncommented = parsePolicy(`rules:\n${example}\n`, 'example.yaml', HOST_FEATURES);
      const ids = uncommented.rules[0]?.match.pci?.map((p) => p.device) ?? [];
      assert.deepEqual(ids, [
        '1751',
        '1752',
        '1800',
        '1801',
        '1802',
        '1803',
        '1804',
        '1805',
        '1806',
        '1807',
        '1760',
        '1761',
        '1762',
        '1763',
        '1819',
      ]);
    });
  });

  describe('reading files', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(path.join(tmpdir(), 'offloadd-policy-'));
    });
    after(() => {
      rmSync(dir, { recursive: true, force: true });
    });

    it('says how to create a missing file', () => {
      const missing = path.join(dir, 'absent.yaml');
      const error = catchPolicyError(() => loadPolicyFile(missing, HOST_FEATURES));
      assert.match(error.message, /ENOENT/);
      assert.ok(error.hint?.includes(`cp ${defaultPolicyPath()} ${missing}`), error.hint);
    });

    it('refuses a directory', () => {
      const error = catchPolicyError(() => loadPolicyFile(dir, HOST_FEATURES));
      assert.match(error.message, /the policy is a directory, not a regular file/);
      assert.match(error.hint ?? '', /path of a YAML file/);
    });

    /**
     * Loads `file` in a child process, so that a loader that blocks or reads without end fails
     * this test instead of hanging or exhausting the machine: the child's address space is capped.
     */
    function loadInChild(file: string): { status: number | null; stdout: string; stderr: string } {
      const script = `try { require(${JSON.stringify(require.resolve('../../src/policy/load'))}).loadPolicyFile(process.argv[1], []); console.log('loaded'); }
        catch (error) { console.log(String(error)); }`;
      const child = spawnSync('prlimit', [`--as=${CHILD_ADDRESS_SPACE_BYTES}`, process.execPath, '-e', script, file], {
        encoding: 'utf8',
        timeout: CHILD_SAFETY_TIMEOUT_MS,
      });
      return { status: child.status, stdout: child.stdout, stderr: child.stderr };
    }

    it('refuses /dev/zero without reading it', () => {
      const result = loadInChild('/dev/zero');
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stdout, /\/dev\/zero: the policy is a character device, not a regular file/);
    });

    it('refuses a FIFO without blocking, whether or not anyone writes to it', () => {
      const fifo = path.join(dir, 'policy.fifo');
      execFileSync('mkfifo', [fifo]);
      const result = loadInChild(fifo);
      assert.equal(result.status, 0, `the loader blocked or died: ${result.stderr}`);
      assert.match(result.stdout, /policy\.fifo: the policy is a FIFO, not a regular file/);
    });

    it('reads at most one byte past the limit of a file that is too large', () => {
      const file = path.join(dir, 'huge.yaml');
      writeFileSync(file, `# ${'x'.repeat(1024 * 1024)}\n`);
      const error = catchPolicyError(() => loadPolicyFile(file, HOST_FEATURES));
      assert.match(error.message, new RegExp(`larger than the ${MAX_POLICY_BYTES} bytes allowed`));
    });

    it('follows a symbolic link to the policy (configuration tools manage files that way)', () => {
      const link = path.join(dir, 'link.yaml');
      symlinkSync(path.join(GOOD_DIR, 'minimal.yaml'), link);
      const policy = loadPolicyFile(link, HOST_FEATURES);
      assert.equal(policy.path, link);
      assert.equal(
        policy.checksum,
        createHash('sha256')
          .update(readFileSync(path.join(GOOD_DIR, 'minimal.yaml')))
          .digest('hex'),
      );
    });

    it('refuses text that is not UTF-8', () => {
      const file = path.join(dir, 'latin1.yaml');
      writeFileSync(file, Buffer.from([0x6d, 0x6f, 0x64, 0x65, 0x3a, 0x20, 0xe9, 0x0a]));
      const error = catchPolicyError(() => loadPolicyFile(file, HOST_FEATURES));
      assert.match(error.message, /UTF-8/);
    });
  });
});

describe('feature names', () => {
  const hostKernelNames = HOST_FEATURES.filter((name) => name !== '');

  it('knows exactly the feature strings of the 6.18 kernel this fixture came from', () => {
    assert.deepEqual([...KNOWN_KERNEL_FEATURES], hostKernelNames);
    for (const retired of RETIRED_KERNEL_FEATURES) assert.ok(!KNOWN_KERNEL_FEATURES.includes(retired));
  });

  const expansions: Array<[string, string[], boolean]> = [
    ['rx', ['rx-checksum'], true],
    ['rx-checksumming', ['rx-checksum'], true],
    [
      'tx',
      ['tx-checksum-ipv4', 'tx-checksum-ip-generic', 'tx-checksum-ipv6', 'tx-checksum-fcoe-crc', 'tx-checksum-sctp'],
      false,
    ],
    ['sg', ['tx-scatter-gather', 'tx-scatter-gather-fraglist'], false],
    ['scatter-gather', ['tx-scatter-gather', 'tx-scatter-gather-fraglist'], false],
    [
      'tso',
      [
        'tx-tcp-segmentation',
        'tx-tcp-ecn-segmentation',
        'tx-tcp-mangleid-segmentation',
        'tx-tcp6-segmentation',
        'tx-tcp-accecn-segmentation',
      ],
      false,
    ],
    ['ufo', [], true],
    ['gso', ['tx-generic-segmentation'], true],
    ['generic-segmentation-offload', ['tx-generic-segmentation'], true],
    ['gro', ['rx-gro'], true],
    ['generic-receive-offload', ['rx-gro'], true],
    ['lro', ['rx-lro'], true],
    ['rxvlan', ['rx-vlan-hw-parse'], true],
    ['txvlan', ['tx-vlan-hw-insert'], true],
    ['ntuple', ['rx-ntuple-filter'], true],
    ['rxhash', ['rx-hashing'], true],
    ['rx-gro-hw', ['rx-gro-hw'], true],
    ['rx-udp-gro-forwarding', ['rx-udp-gro-forwarding'], true],
    ['tx-lockless', [], true],
  ];
  for (const [name, features, explicit] of expansions) {
    it(`resolves ${name}`, () => {
      assert.deepEqual(resolveFeatureName(name, HOST_FEATURES), { features, explicit });
    });
  }

  it('covers every ethtool alias in the expansion table', () => {
    const tested = new Set(expansions.map(([name]) => name));
    for (const alias of ETHTOOL_ALIASES) assert.ok(tested.has(alias.short), alias.short);
  });

  it('expands aliases only to what the host has', () => {
    assert.deepEqual(resolveFeatureName('tso', ['tx-tcp-segmentation', 'rx-gro']), {
      features: ['tx-tcp-segmentation'],
      explicit: false,
    });
  });

  it('accepts a feature only a newer host kernel knows', () => {
    assert.deepEqual(resolveFeatureName('rx-future-offload', [...HOST_FEATURES, 'rx-future-offload']), {
      features: ['rx-future-offload'],
      explicit: true,
    });
  });

  it('knows nothing of unknown, empty or wrongly cased names', () => {
    for (const name of ['grow', '', 'GRO', 'rx_gro']) assert.equal(resolveFeatureName(name, HOST_FEATURES), null, name);
  });

  const suggestions: Array<[string, string | null]> = [
    ['grow', 'gro'],
    ['GRO', 'gro'],
    ['rx_gro', 'rx-gro'],
    ['tx-generic-segmentaiton', 'tx-generic-segmentation'],
    ['generic-receive', 'generic-receive-offload'],
    ['rx-gro-hww', 'rx-gro-hw'],
    ['banana', null],
    ['x', null],
    ['TX', 'tx'],
    ['completely-unrelated-words', null],
  ];
  for (const [name, suggestion] of suggestions) {
    it(`suggests ${String(suggestion)} for ${name}`, () => {
      assert.equal(suggestFeatureName(name), suggestion);
    });
  }

  it('measures transpositions as one edit', () => {
    assert.equal(editDistance('gro', 'rgo'), 1);
    assert.equal(editDistance('gso', 'gro'), 1);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(didYouMean('rpeort', ['enforce', 'report']), 'report');
  });
});
