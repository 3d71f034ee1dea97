/**
 * The actor of a drift as each output shows it (issue 19 #2): which actor a check's records get,
 * the journal's message and OFFLOADD_ACTOR_* fields, offloadctl's BY column and status line, and
 * old ledger lines without an actor. No kernel: the actors are made here.
 */
import { strict as assert } from 'node:assert';
import { NO_USER_SPACE_REQUEST, actorName, shortActor, type Actor } from '../../src/attribution/actor';
import { attributionText, byText } from '../../src/cli/offloadctl-format';
import { parseRecord, type LedgerRecord, type NewRecord } from '../../src/ledger/record';
import { describeRecord } from '../../src/observe/describe';
import { attachActors, recordActors, wantsActor } from '../../src/reconcile/record-decisions';

function actor(pid: number, extra: Partial<Actor> = {}): Actor {
  return {
    pid,
    tid: pid,
    comm: 'NetworkManager',
    exe: '/usr/sbin/NetworkManager',
    cmdline: null,
    uid: 0,
    user: 'root',
    unit: 'NetworkManager.service',
    userUnit: null,
    container: null,
    pod: null,
    cgroup: { id: '4242', path: '/system.slice/NetworkManager.service' },
    netns: 4026531840,
    syscall: 'sendmsg',
    request: 'ethtool-netlink FEATURES_SET',
    ifindex: 3,
    ifname: 'ens1f0np0',
    features: { 'rx-gro': true },
    time: '123456789',
    process: 'running',
    parent: null,
    partial: null,
    ...extra,
  };
}

const drift: LedgerRecord = {
  seq: 7,
  time: '2026-12-06T01:00:00.000Z',
  event: 'drift',
  trigger: 'features',
  action: 'enforced',
  interface: 'ens1f0np0',
  ifindex: 3,
  rule: 'bcm57508',
  feature: 'rx-gro',
  wanted: 'off',
  active: 'on',
  correctionUs: 640,
};

describe('the actor of a drift', () => {
  describe('recordActors', () => {
    it('takes the latest actor, and all of them when several asked', () => {
      const [latest, earlier] = [actor(812), actor(4242, { comm: 'ethtool', unit: 'session-3.scope' })];
      assert.deepEqual(recordActors({ actors: [latest], none: null }, true), { actor: latest });
      assert.deepEqual(recordActors({ actors: [latest, earlier], none: null }, true), {
        actor: latest,
        actors: [latest, earlier],
      });
    });

    it('says "no request from user space" only for a check that answers a link event', () => {
      assert.deepEqual(recordActors({ actors: [], none: NO_USER_SPACE_REQUEST }, true), {
        actor: { none: NO_USER_SPACE_REQUEST },
      });
      assert.equal(recordActors({ actors: [], none: NO_USER_SPACE_REQUEST }, false), null, 'a sweep cannot tell');
    });

    it('goes on drift and flapping records only, and is asked for only then', () => {
      const records: NewRecord[] = [
        { event: 'initial', trigger: 'start', action: 'enforced' },
        { event: 'drift', trigger: 'features', action: 'enforced' },
        { event: 'flapping', trigger: 'features', action: 'backoff' },
      ];
      assert.equal(wantsActor(records.slice(0, 1)), false);
      assert.equal(wantsActor(records), true);
      attachActors(records, { actor: actor(812) });
      assert.deepEqual(
        records.map((record) => (record.actor && 'pid' in record.actor ? record.actor.pid : null)),
        [null, 812, 812],
      );
    });
  });

  describe('names', () => {
    it('a service by its unit, anything else by its comm, no request as kernel', () => {
      assert.equal(actorName(actor(812)), 'NetworkManager.service');
      assert.equal(actorName(actor(9, { comm: 'ethtool', unit: 'session-3.scope' })), 'ethtool');
      assert.equal(actorName({ none: NO_USER_SPACE_REQUEST }), 'kernel');
      assert.equal(shortActor(actor(812)), 'NetworkManager.service (pid 812)');
    });
  });

  describe('journal', () => {
    it('names the actor in the message and in OFFLOADD_ACTOR_* fields', () => {
      const { text, fields } = describeRecord({ ...drift, actor: actor(812) });
      assert.equal(
        text,
        'ens1f0np0: rx-gro drifted off → on (rule bcm57508, seen on features), by NetworkManager.service (pid 812, /usr/sbin/NetworkManager); set off again in 640 µs',
      );
      assert.equal(fields['OFFLOADD_ACTOR_PID'], '812');
      assert.equal(fields['OFFLOADD_ACTOR_UNIT'], 'NetworkManager.service');
      assert.equal(fields['OFFLOADD_ACTOR_COMM'], 'NetworkManager');
      assert.equal(fields['OFFLOADD_ACTOR_REQUEST'], 'ethtool-netlink FEATURES_SET');
      assert.equal(fields['OFFLOADD_ACTORS'], undefined);
    });

    it('says precisely when no request came from user space', () => {
      const { text, fields } = describeRecord({ ...drift, actor: { none: NO_USER_SPACE_REQUEST } });
      assert.match(text, /seen on features\), no request from user space: the kernel or the driver changed it/);
      assert.equal(fields['OFFLOADD_ACTOR'], NO_USER_SPACE_REQUEST);
    });

    it('lists every actor when several asked, and names the one behind a back-off', () => {
      const several = [actor(812), actor(99, { comm: 'ethtool', unit: null })];
      assert.match(
        String(describeRecord({ ...drift, actor: several[0], actors: several }).fields['OFFLOADD_ACTORS']),
        /; ethtool \(pid 99/,
      );
      const flapping = describeRecord({
        ...drift,
        event: 'flapping',
        action: 'backoff',
        reason: 'corrected 5 times within 60 s; holding corrections back for 8 s',
        actor: actor(812),
      });
      assert.match(
        flapping.text,
        /^ens1f0np0: backing off: NetworkManager\.service keeps turning rx-gro on: corrected 5 times/,
      );
    });

    it('leaves the message as it was without an actor (attribution off)', () => {
      assert.doesNotMatch(describeRecord(drift).text, /by |no request/);
      assert.equal(describeRecord(drift).fields['OFFLOADD_ACTOR'], undefined);
    });
  });

  describe('offloadctl', () => {
    it('BY: the short name and pid, +N for more, kernel, or - without attribution', () => {
      assert.equal(byText({ ...drift, actor: actor(812) }), 'NetworkManager.service (pid 812)');
      assert.equal(
        byText({ ...drift, actor: actor(812), actors: [actor(812), actor(9)] }),
        'NetworkManager.service (pid 812) +1',
      );
      assert.equal(byText({ ...drift, actor: { none: NO_USER_SPACE_REQUEST } }), 'kernel');
      assert.equal(byText(drift), '-');
    });

    it('status: on with counts, or off with why', () => {
      const base = { dropped: 0, attributed: 3, otherNamespace: 0, traced: ['ioctl'], hook: 'raw_tracepoint' as const };
      assert.equal(
        attributionText({ ...base, enabled: true, reason: null }),
        'on (raw_tracepoint), 3 attributed, 0 dropped',
      );
      assert.equal(
        attributionText({ ...base, enabled: false, reason: 'turned off (--attribution=off)', hook: null }),
        'off (turned off (--attribution=off))',
      );
    });
  });

  describe('ledger', () => {
    it('parses old records without an actor, and new ones with it, unchanged', () => {
      const old = parseRecord(JSON.stringify(drift));
      assert.ok('record' in old && old.record.actor === undefined);
      const withActor = { ...drift, actor: actor(812) };
      const parsed = parseRecord(JSON.stringify(withActor));
      assert.ok('record' in parsed);
      assert.deepEqual(parsed.record, withActor);
    });
  });
});
