import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import {
  findManagerSettings,
  findOverlaps,
  matchTarget,
  type ManagerOverlap,
  type PolicyInterface,
} from '../../src/doctor/managers';
import { parseIfcfg } from '../../src/doctor/managers/ifcfg';
import { parseInterfaces } from '../../src/doctor/managers/ifupdown';
import { parseKeyfile } from '../../src/doctor/managers/networkmanager';
import { ethtoolFeatureCommands, shellWords } from '../../src/doctor/managers/reader';
import { parseLinkFile } from '../../src/doctor/managers/systemd-link';
import { parseTunedProfile } from '../../src/doctor/managers/tuned';
import { anyTarget } from '../../src/doctor/managers/types';
import { parseRules } from '../../src/doctor/managers/udev';
import { REPO_ROOT } from '../helpers/netns';

const ROOT = path.join(REPO_ROOT, 'test', 'fixtures', 'managers', 'host');

const eth0: PolicyInterface = {
  name: 'eth0',
  mac: '00:11:22:33:44:55',
  driver: 'bnxt_en',
  kind: null,
  wanted: [
    { feature: 'rx-gro', on: false, as: 'gro', explicit: true },
    { feature: 'tx-generic-segmentation', on: false, as: 'gso', explicit: true },
  ],
};

describe('other managers: --root fixtures in the real formats', () => {
  const overlaps = findOverlaps(findManagerSettings(ROOT), [eth0]);
  const byFile = (file: string): ManagerOverlap[] => overlaps.filter((overlap) => overlap.file === file);

  it('finds each of the six formats, with file, line and agreement', () => {
    assert.deepEqual(
      overlaps.map((o) => [
        o.tool,
        o.file,
        o.features.map((f) => `${f.line}:${f.as}=${f.managerOn}:${f.agrees ? 'agrees' : 'conflicts'}`).join(' '),
        o.active,
      ]),
      [
        [
          'NetworkManager',
          '/etc/NetworkManager/system-connections/uplink.nmconnection',
          '11:gro=true:conflicts 12:gso=false:agrees',
          true,
        ],
        ['systemd .link', '/etc/systemd/network/10-bnxt.link', '7:gro=true:conflicts 8:gso=false:agrees', true],
        ['wicked/ifcfg', '/etc/sysconfig/network/ifcfg-eth0', '3:gro=true:conflicts', true],
        ['ifupdown', '/etc/network/interfaces', '10:gro=true:conflicts 11:gso=true:conflicts', true],
        ['udev', '/etc/udev/rules.d/70-offload.rules', '2:gro=true:conflicts', true],
        ['tuned', '/etc/tuned/offload-net/tuned.conf', '7:gro=true:conflicts', true],
        ['tuned', '/usr/lib/tuned/latency-lab/tuned.conf', '7:gro=false:agrees 7:gso=false:agrees', false],
      ],
    );
  });

  it('stays quiet for files that target another interface', () => {
    for (const file of [
      '/etc/NetworkManager/system-connections/storage.nmconnection',
      '/etc/systemd/network/05-storage.link',
      '/etc/sysconfig/network/ifcfg-eth9',
      '/etc/network/interfaces.d/storage',
    ]) {
      assert.deepEqual(byFile(file), [], file);
    }
    assert.equal(
      overlaps.filter((o) => o.tool === 'udev').length,
      1,
      'the rule for another MAC address is not reported',
    );
  });

  it('applies only the first matching .link file, as udev does', () => {
    assert.deepEqual(byFile('/usr/lib/systemd/network/99-default.link'), []);
    const other = { ...eth0, driver: 'ixgbe' };
    const links = findOverlaps(findManagerSettings(ROOT), [other]).filter((o) => o.tool === 'systemd .link');
    assert.deepEqual(
      links.map((o) => [o.file, o.features[0]?.agrees]),
      [['/usr/lib/systemd/network/99-default.link', true]],
    );
  });

  it('says which file and line in one sentence', () => {
    assert.equal(
      byFile('/etc/udev/rules.d/70-offload.rules')[0]?.summary,
      '/etc/udev/rules.d/70-offload.rules:2 (udev) turns gro on (conflicts with the policy) on eth0',
    );
    assert.match(byFile('/usr/lib/tuned/latency-lab/tuned.conf')[0]?.summary ?? '', /profile not active/);
  });

  it('reads nothing outside the root, and an empty root has no settings', () => {
    assert.deepEqual(findManagerSettings(path.join(ROOT, 'nonexistent')), []);
  });
});

describe('other managers: parsers', () => {
  it('splits shell words and finds every ethtool -K in them', () => {
    assert.deepEqual(shellWords(`ethtool -K "eth 0" gro off; ethtool --offload eth1 tso on`), [
      'ethtool',
      '-K',
      'eth 0',
      'gro',
      'off',
      ';',
      'ethtool',
      '--offload',
      'eth1',
      'tso',
      'on',
    ]);
    assert.deepEqual(ethtoolFeatureCommands(shellWords('ethtool -K eth0 gro off gso')), [
      { ifname: 'eth0', features: [{ name: 'gro', on: false }] },
    ]);
    assert.deepEqual(ethtoolFeatureCommands(['-K']), []);
  });

  it('reads NetworkManager match sections and ignores "ignore"', () => {
    const setting = parseKeyfile(
      '/x',
      '[match]\ninterface-name=eth*;!eth9\ndriver=bnxt_en\n[ethtool]\nfeature-tso=off\nfeature-lro=ignore\n',
    );
    assert.deepEqual(setting?.target.names, ['eth*', '!eth9']);
    assert.deepEqual(setting?.features, [{ name: 'tso', on: false, line: 5 }]);
    assert.equal(
      parseKeyfile('/x', '[connection]\ninterface-name=eth0\n'),
      null,
      'a profile without features is not a setting',
    );
  });

  it('reads .link Match keys it cannot evaluate as "may match"', () => {
    const setting = parseLinkFile('/x.link', '[Match]\nPath=pci-0000:3b:00.0\n[Link]\nTCP6SegmentationOffload=no\n', 0);
    assert.equal(matchTarget(setting.target, eth0), 'maybe');
    const overlaps = findOverlaps(
      [setting],
      [{ ...eth0, wanted: [{ feature: 'tx-tcp6-segmentation', on: false, as: 'tso', explicit: false }] }],
    );
    assert.equal(overlaps[0]?.matches, 'maybe');
    assert.match(overlaps[0]?.summary ?? '', /may target it/);
  });

  it('reads RHEL ifcfg DEVICE= and an explicit name in ETHTOOL_OPTS', () => {
    assert.deepEqual(
      parseIfcfg('/etc/sysconfig/network-scripts/ifcfg-uplink', 'DEVICE=eth0\nETHTOOL_OPTS="-K eth0 gro off"\n')?.target
        .names,
      ['eth0'],
    );
    assert.equal(parseIfcfg('/etc/sysconfig/network/ifcfg-eth0', "ETHTOOL_OPTIONS='-s iface speed 1000'\n"), null);
  });

  it('reads ifupdown stanzas, $IFACE and a command for another interface', () => {
    const settings = parseInterfaces(
      '/i',
      'iface bond0 inet manual\n  post-up ethtool -K $IFACE gro off\n  up ethtool -K eth1 gso off\n',
    );
    assert.deepEqual(
      settings.map((s) => [s.target.names, s.features.map((f) => f.name)]),
      [
        [['bond0'], ['gro']],
        [['eth1'], ['gso']],
      ],
    );
  });

  it('reads udev matches: alternatives, negation, drivers', () => {
    const [setting] = parseRules(
      '/r',
      'SUBSYSTEM=="net", DRIVERS=="bnxt_en", KERNEL!="eth9", RUN+="/sbin/ethtool -K %k gro off"\n',
    );
    assert.deepEqual(setting?.target, { ...anyTarget(), names: ['!eth9'], drivers: ['bnxt_en'] });
    assert.equal(matchTarget(setting?.target ?? anyTarget(), eth0), 'yes');
    assert.equal(matchTarget(setting?.target ?? anyTarget(), { ...eth0, name: 'eth9' }), 'no');
  });

  it('reads tuned net sections by name or type, and their includes', () => {
    const { settings, includes } = parseTunedProfile(
      '/t',
      '[main]\ninclude=network-latency\n[net]\ndevices=!eth9\nfeatures=gro off tso\n',
      true,
    );
    assert.deepEqual(includes, ['network-latency']);
    assert.deepEqual(settings[0]?.features, [{ name: 'gro', on: false, line: 5 }]);
    assert.equal(matchTarget(settings[0]?.target ?? anyTarget(), { ...eth0, name: 'eth9' }), 'no');
  });
});
