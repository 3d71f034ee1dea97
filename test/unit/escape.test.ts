import { strict as assert } from 'node:assert';
import { escapeControl, escapeStrings } from '../../src/observe/escape';

describe('escaping control characters for terminals and logs', () => {
  const cases: Array<[label: string, input: string, shown: string]> = [
    ['a plain name', 'enp65s0f0np0', 'enp65s0f0np0'],
    ['an escape sequence', 'up\x1b[2J', 'up\\x1b[2J'],
    ['a bell and a carriage return', 'a\x07b\rc', 'a\\x07b\\x0dc'],
    ['DEL and a C1 CSI (latin1 bytes from netlink)', 'x\x7fy\x9bz', 'x\\x7fy\\x9bz'],
    ['a right-to-left override', 'eth\u202e0', 'eth\\u202e0'],
    ['a backslash and non-control text', 'a\\b-é', 'a\\b-é'],
  ];
  for (const [label, input, shown] of cases) {
    it(label, () => {
      assert.equal(escapeControl(input), shown);
    });
  }

  it('keeps line breaks and tabs for multi-line messages when asked', () => {
    assert.equal(escapeControl('one\n\ttwo\x1b', { keepLineBreaks: true }), 'one\n\ttwo\\x1b');
    assert.equal(escapeControl('one\ntwo'), 'one\\x0atwo');
  });

  it('escapes every string in a result, keys included, and leaves other values', () => {
    assert.deepEqual(escapeStrings({ name: 'a\x1b', list: ['\x00', 1, null, true], nested: { 'k\x07': 'v' } }), {
      name: 'a\\x1b',
      list: ['\\x00', 1, null, true],
      nested: { 'k\\x07': 'v' },
    });
  });
});
