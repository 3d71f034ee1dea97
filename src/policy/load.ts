/**
 * Policy file (YAML) → Policy: the top-level settings (mode, sweep, flapping, ledger, attribution)
 * with their defaults, the rules (load-rules.ts), and which file the daemon runs. Every problem
 * is a PolicyError carrying the 1-based line and column of the offending node, its dotted key
 * path and a hint (yaml-reader.ts); nothing half-valid gets through. Reading the file's bytes
 * safely is policy-file.ts's job.
 */
import { existsSync } from 'node:fs';
import { isMap, isScalar } from 'yaml';
import { PolicyError } from '../errors';
import { DEFAULT_POLICY_TEXT, SHIPPED_POLICY_PATH } from '../generated/build-info';
import { readMode, RulesReader } from './load-rules';
import { MAX_POLICY_BYTES } from './limits';
import { defaultPolicyPath, policyTooLarge, readPolicyBytes } from './policy-file';
import { sha256 } from './sha256';
import type { Policy } from './types';
import { describeNode, PolicyYamlReader, type IntegerField } from './yaml-reader';

/** Policy.path of the shipped default. */
export const BUILT_IN_POLICY_LABEL = '(built-in default)';
const TOP_KEYS = ['mode', 'sweep_interval', 'flapping', 'ledger', 'attribution', 'rules'] as const;

/** Longest wait we schedule: keeps every timer far below setTimeout's 24.8-day overflow. */
const ONE_DAY_SEC = 86_400;

const SWEEP_INTERVAL: IntegerField<'sweep_interval'> = {
  key: 'sweep_interval',
  min: 0,
  max: ONE_DAY_SEC,
  fallback: 300,
  unit: 'seconds (0 disables the sweep)',
};

const FLAPPING_FIELDS = [
  { key: 'max_corrections', min: 1, max: 10_000, fallback: 5, unit: 'corrections' },
  { key: 'window', min: 1, max: ONE_DAY_SEC, fallback: 60, unit: 'seconds' },
  { key: 'max_backoff', min: 1, max: ONE_DAY_SEC, fallback: 600, unit: 'seconds' },
] as const satisfies ReadonlyArray<IntegerField<string>>;

const LEDGER_FIELDS = [
  { key: 'max_bytes', min: 4096, max: Number.MAX_SAFE_INTEGER, fallback: 16_777_216, unit: 'bytes' },
  { key: 'keep', min: 0, max: 1000, fallback: 4, unit: 'rotated files' },
] as const satisfies ReadonlyArray<IntegerField<string>>;

function parseWithChecksum(text: string, path: string, hostFeatures: readonly string[], checksum: string): Policy {
  const yaml: PolicyYamlReader = new PolicyYamlReader(path, text);
  const root = yaml.root();
  if (root === null || (isScalar(root) && root.value === null)) {
    yaml.fail(root, '', 'the policy is empty', {
      hint: 'write at least `rules:` with one targeted rule; see the commented default policy shipped with offloadd',
    });
  }
  if (!isMap(root)) {
    yaml.fail(root, '', `the policy must be a mapping of settings, found ${describeNode(root)}`, {
      hint: `start with top-level keys such as \`mode: enforce\` and \`rules:\` (allowed: ${TOP_KEYS.join(', ')})`,
    });
  }
  const top = yaml.entries(root, '', TOP_KEYS, 'at the top level');
  // Settings before rules: they usually come first in the file, and so should their errors.
  const mode = readMode(yaml, top.get('mode')) ?? 'enforce';
  const sweepIntervalSec = yaml.integer(top.get('sweep_interval'), SWEEP_INTERVAL);
  const flapping = yaml.integerSection(top.get('flapping'), FLAPPING_FIELDS);
  const ledger = yaml.integerSection(top.get('ledger'), LEDGER_FIELDS);
  const attributionEntry = top.get('attribution');
  const attribution = attributionEntry === undefined ? true : yaml.onOff(attributionEntry);
  const rules = new RulesReader(yaml, hostFeatures).read(top.get('rules'), root);
  return {
    path,
    checksum,
    mode,
    sweepIntervalSec,
    flapping: {
      maxCorrections: flapping.max_corrections,
      windowSec: flapping.window,
      maxBackoffSec: flapping.max_backoff,
    },
    ledger: { maxBytes: ledger.max_bytes, keepFiles: ledger.keep },
    attribution,
    rules,
    warnings: yaml.warnings,
  };
}

/** Parses policy text (no I/O). `path` is only used in messages; checksum is over the UTF-8 bytes. */
export function parsePolicy(text: string, path: string, hostFeatures: readonly string[]): Policy {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > MAX_POLICY_BYTES) throw policyTooLarge(path, 'check that the text is the policy');
  return parseWithChecksum(text, path, hostFeatures, sha256(bytes));
}

/** Reads and parses a policy file; an unreadable file is a PolicyError with a hint. */
export function loadPolicyFile(path: string, hostFeatures: readonly string[]): Policy {
  const bytes = readPolicyBytes(path);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (error) {
    throw new PolicyError(path, 'the policy is not valid UTF-8 text', { hint: 'save it as UTF-8', cause: error });
  }
  return parseWithChecksum(text, path, hostFeatures, sha256(bytes));
}

/** Where an installed policy lives; the shipped default applies when there is none. */
export const DEFAULT_POLICY_PATH = '/etc/offloadd/policy.yaml';

/**
 * The policy the daemon runs: `policyPath` when given, else DEFAULT_POLICY_PATH if it exists,
 * else the shipped default. Throws PolicyError.
 */
export function loadConfiguredPolicy(policyPath: string | null, hostFeatures: readonly string[]): Policy {
  if (policyPath !== null) return loadPolicyFile(policyPath, hostFeatures);
  if (existsSync(DEFAULT_POLICY_PATH)) return loadPolicyFile(DEFAULT_POLICY_PATH, hostFeatures);
  return loadDefaultPolicy(hostFeatures);
}

export { defaultPolicyPath };

/** The shipped default policy, embedded at build time; its `path` is BUILT_IN_POLICY_LABEL. */
export function loadDefaultPolicy(hostFeatures: readonly string[]): Policy {
  return { ...parsePolicy(DEFAULT_POLICY_TEXT, SHIPPED_POLICY_PATH, hostFeatures), path: BUILT_IN_POLICY_LABEL };
}
