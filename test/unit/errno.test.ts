/**
 * Every errno the kernel can hand back is said by name in messages, records and API answers,
 * including the kernel's own (ENOTSUPP, 524), which no C library names: strerror() said
 * "Unknown error 524" and libuv "Unknown system error -524" (issue 20 #17).
 */
import { strict as assert } from 'node:assert';
import * as os from 'node:os';
import { kernelError, kernelErrorOf } from '../../src/addon/binding';
import { describeErrno, errnoName } from '../../src/addon/errno';
import { KernelError } from '../../src/errors';

describe('errno names and descriptions', () => {
  it('an errno no C library names is never "Unknown error": the kernel\'s own by name, others as errno N (issue 20 #17)', () => {
    const notSupported = kernelErrorOf(524, 'ETHTOOL_MSG_FEATURES_SET', 'eth0');
    assert.equal(notSupported.code, 'ENOTSUPP');
    assert.equal(
      notSupported.message,
      'ETHTOOL_MSG_FEATURES_SET on eth0 failed: operation is not supported (by the driver) (ENOTSUPP, errno 524)',
    );
    assert.equal(notSupported.hint, 'the driver does not support this operation');
    assert.equal(errnoName(517), 'EPROBE_DEFER');
    assert.equal(errnoName(4000), 'errno 4000');
    assert.equal(kernelErrorOf(4000, 'X', 'eth0').message, 'X on eth0 failed: errno 4000');
    // As the addon throws it (native/syscall.h says such an errno as "errno N").
    const thrown = Object.assign(new Error('ETHTOOL_SFEATURES on eth0 failed: errno 524'), {
      errno: 524,
      syscall: 'ETHTOOL_SFEATURES',
      ifname: 'eth0',
    });
    const rewrapped = kernelError(thrown) as KernelError;
    assert.ok(rewrapped instanceof KernelError);
    assert.equal(rewrapped.code, 'ENOTSUPP');
    assert.equal(rewrapped.message, notSupported.message.replace('ETHTOOL_MSG_FEATURES_SET', 'ETHTOOL_SFEATURES'));
    for (let errno = 1; errno < 4096; errno++) {
      const { name, description } = describeErrno(errno);
      assert.doesNotMatch(
        `${name} ${description}`,
        /unknown|^\s|\(\s*,|,\s*\)/i,
        `errno ${errno}: ${name} / ${description}`,
      );
      assert.ok(name.length > 0 && description.length > 0, `errno ${errno}`);
    }
  });

  it('names the errnos libuv knows as before, and those only os.constants knows', () => {
    assert.equal(errnoName(os.constants.errno.ENOBUFS), 'ENOBUFS');
    assert.equal(kernelErrorOf(os.constants.errno.ENODEV, 'GET', 'eth0').vanished, true);
    assert.equal(errnoName(os.constants.errno.EBADMSG), 'EBADMSG');
    assert.match(
      kernelErrorOf(os.constants.errno.EPERM, 'SET', 'eth0', 'not allowed').message,
      /^SET on eth0 failed: .+ \(not allowed\)$/,
    );
  });
});
