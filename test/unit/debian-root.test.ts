/**
 * The Debian release the service tests boot for the host's build: the host's own on Debian,
 * the newest stable release elsewhere (texts as /etc/os-release has them).
 */
import { strict as assert } from 'node:assert';
import { debianSuiteForHost } from '../helpers/debian-root';

describe('debianSuiteForHost', () => {
  it("boots the host's own release on Debian 12 and 13", () => {
    const debian = (version: string, codename: string): string =>
      `PRETTY_NAME="Debian GNU/Linux ${version} (${codename})"\nNAME="Debian GNU/Linux"\nVERSION_ID="${version}"\nVERSION_CODENAME=${codename}\nID=debian\n`;
    assert.equal(debianSuiteForHost(debian('12', 'bookworm')), 'bookworm');
    assert.equal(debianSuiteForHost(debian('13', 'trixie')), 'trixie');
  });

  it('boots the newest stable Debian on Ubuntu, on other systems and on an unreadable file', () => {
    const noble =
      'PRETTY_NAME="Ubuntu 24.04 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nVERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\n';
    assert.equal(debianSuiteForHost(noble), 'trixie');
    assert.equal(debianSuiteForHost('ID=fedora\nVERSION_ID=41\n'), 'trixie');
    assert.equal(debianSuiteForHost(''), 'trixie');
    assert.equal(debianSuiteForHost('ID=debian\nVERSION_CODENAME="../x"\n'), 'trixie');
  });
});
