import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { sha256 } from '../../src/policy/sha256';
import { seededRandom } from '../helpers/random';

const reference = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

describe('policy checksum: SHA-256 without node:crypto', () => {
  it('gives the FIPS 180-4 example digests', () => {
    assert.equal(sha256(Buffer.from('')), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    assert.equal(sha256(Buffer.from('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    assert.equal(
      sha256(Buffer.from('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')),
      '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
    );
  });

  it('agrees with node:crypto at every length around the block edges and on a policy at the size limit (seeded: OFFLOADD_FUZZ_SEED replays a run)', () => {
    const seed = Number(process.env['OFFLOADD_FUZZ_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
    const random = seededRandom(seed);
    const bytes = (length: number): Buffer => Buffer.from(Array.from({ length }, () => Math.floor(random() * 256)));
    for (const length of [...Array.from({ length: 200 }, (_, i) => i), 32 * 1024, 32 * 1024 + 1]) {
      const input = bytes(length);
      assert.equal(sha256(input), reference(input), `length ${length}, seed ${seed}`);
    }
    const slice = bytes(100).subarray(7, 77); // a view into a larger buffer
    assert.equal(sha256(slice), reference(slice), `a slice, seed ${seed}`);
  });
});
