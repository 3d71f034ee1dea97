# Sourced by scripts/package.sh and scripts/image.sh: the release key, the apt repository and the
# signed checksums of every artifact in packages/ (docs/RELEASING.md).
#   release_key_init OUT       picks the signing key (below) and exports GNUPGHOME and RELEASE_KEY
#   apt_repository OUT VERSION EPOCH   packages/apt/ from packages/offloadd_VERSION_*.deb, signed
#   checksums OUT VERSION      packages/SHA256SUMS over every artifact of VERSION, and SHA256SUMS.asc
# The caller is at the repository's root and defines die MESSAGE.
#
# The key, in this order:
#   OFFLOADD_RELEASE_GNUPGHOME + OFFLOADD_RELEASE_KEY   an existing keyring (the release machine's,
#       or a smartcard's stubs) and the fingerprint of the key to sign with; used in place;
#   OFFLOADD_RELEASE_KEY_FILE    an exported secret key (armored or binary), imported into a
#       temporary keyring that is deleted when the build ends;
#   neither: a throw-away key for this build only (tests, development), generated into
#       OUT/.build-key/ so that npm run image signs with the same key; npm run package replaces it.
#       It proves nothing to anyone but this build's own tests.

APT_SUITE=stable
APT_COMPONENT=main
KEYRING_NAME=offloadd-archive-keyring
THROWAWAY_UID='offloadd throw-away build key (not a release key) <nobody@invalid>'

release_key_init() {
  local out="$1"
  command -v gpg >/dev/null || die "gpg is missing: apt-get install gnupg"
  if [ -n "${OFFLOADD_RELEASE_GNUPGHOME:-}" ]; then
    [ -n "${OFFLOADD_RELEASE_KEY:-}" ] || die "OFFLOADD_RELEASE_GNUPGHOME is set: set OFFLOADD_RELEASE_KEY to the fingerprint of the key to sign with"
    export GNUPGHOME="$OFFLOADD_RELEASE_GNUPGHOME"
    RELEASE_KEY="$OFFLOADD_RELEASE_KEY"
  elif [ -n "${OFFLOADD_RELEASE_KEY_FILE:-}" ]; then
    [ -r "$OFFLOADD_RELEASE_KEY_FILE" ] || die "OFFLOADD_RELEASE_KEY_FILE=$OFFLOADD_RELEASE_KEY_FILE cannot be read"
    GNUPGHOME="$(mktemp -d "${TMPDIR:-/tmp}/offloadd-release-key.XXXXXX")"
    export GNUPGHOME
    RELEASE_KEY_TEMP_HOME="$GNUPGHOME"
    gpg --batch --quiet --import "$OFFLOADD_RELEASE_KEY_FILE" 2>/dev/null ||
      die "cannot import the secret key in OFFLOADD_RELEASE_KEY_FILE (an OpenPGP secret key, exported with gpg --export-secret-keys)"
    RELEASE_KEY="$(gpg --batch --with-colons --list-secret-keys 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }')"
  else
    export GNUPGHOME="$out/.build-key"
    if [ ! -s "$GNUPGHOME/fingerprint" ]; then
      rm -rf "$GNUPGHOME" && install -d -m 0700 "$GNUPGHOME"
      gpg --batch --quiet --passphrase '' --quick-gen-key "$THROWAWAY_UID" ed25519 sign 7d 2>/dev/null ||
        die "gpg cannot generate the throw-away build key"
      gpg --batch --with-colons --list-secret-keys 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }' > "$GNUPGHOME/fingerprint"
      echo "sign: no release key given (OFFLOADD_RELEASE_KEY_FILE): signing with a throw-away key made for this build" >&2
    fi
    RELEASE_KEY="$(cat "$GNUPGHOME/fingerprint")"
  fi
  gpg --batch --list-secret-keys "$RELEASE_KEY" >/dev/null 2>&1 || die "no secret key $RELEASE_KEY in $GNUPGHOME"
}

# Stops the gpg-agent a keyring of our own started (not the operator's), and deletes a temporary one.
release_key_cleanup() {
  if [ -n "${GNUPGHOME:-}" ] && [ "$GNUPGHOME" != "${OFFLOADD_RELEASE_GNUPGHOME:-}" ]; then
    gpgconf --kill gpg-agent >/dev/null 2>&1 || true
  fi
  [ -z "${RELEASE_KEY_TEMP_HOME:-}" ] || rm -rf "$RELEASE_KEY_TEMP_HOME"
}

# sign_file FILE: FILE.asc, an armored detached signature.
sign_file() {
  gpg --batch --yes --quiet --pinentry-mode loopback --local-user "$RELEASE_KEY" --armor --detach-sign -o "$1.asc" "$1"
}

apt_repository() {
  local out="$1" version="$2" epoch="$3" repo="$1/apt" deb arch dir
  command -v apt-ftparchive >/dev/null || die "apt-ftparchive is missing: apt-get install apt-utils"
  rm -rf "$repo"
  install -d "$repo/pool/$APT_COMPONENT/o/offloadd"
  for deb in "$out"/offloadd_"$version"_*.deb; do
    [ -e "$deb" ] || die "no offloadd_${version}_*.deb in $out for the apt repository"
    cp "$deb" "$repo/pool/$APT_COMPONENT/o/offloadd/"
  done
  local arches=(amd64 arm64)
  (
    cd "$repo"
    for arch in "${arches[@]}"; do
      dir="dists/$APT_SUITE/$APT_COMPONENT/binary-$arch"
      install -d "$dir"
      apt-ftparchive --arch "$arch" packages "pool/$APT_COMPONENT" > "$dir/Packages"
      gzip -9 -n -k "$dir/Packages"
    done
    # apt-ftparchive (2.6) writes the current time as Date:; the commit's time keeps it reproducible.
    apt-ftparchive \
      -o APT::FTPArchive::Release::Origin=offloadd -o APT::FTPArchive::Release::Label=offloadd \
      -o APT::FTPArchive::Release::Suite="$APT_SUITE" -o APT::FTPArchive::Release::Codename="$APT_SUITE" \
      -o APT::FTPArchive::Release::Architectures="${arches[*]}" \
      -o APT::FTPArchive::Release::Components="$APT_COMPONENT" \
      -o APT::FTPArchive::Release::Description="offloadd, the NIC offload policy daemon" \
      release "dists/$APT_SUITE" > "dists/$APT_SUITE/Release.new"
    sed "s/^Date: .*/Date: $(LC_ALL=C date -u -R -d "@$epoch")/" "dists/$APT_SUITE/Release.new" > "dists/$APT_SUITE/Release"
    rm "dists/$APT_SUITE/Release.new"
  )
  local gpgsign=(gpg --batch --yes --quiet --pinentry-mode loopback --local-user "$RELEASE_KEY")
  "${gpgsign[@]}" --clearsign -o "$repo/dists/$APT_SUITE/InRelease" "$repo/dists/$APT_SUITE/Release"
  "${gpgsign[@]}" --armor --detach-sign -o "$repo/dists/$APT_SUITE/Release.gpg" "$repo/dists/$APT_SUITE/Release"
  # The public key, as a keyring for Signed-By: (binary) and armored for people and curl | gpg.
  gpg --batch --export "$RELEASE_KEY" > "$repo/$KEYRING_NAME.gpg"
  gpg --batch --armor --export "$RELEASE_KEY" > "$repo/$KEYRING_NAME.asc"
  cat > "$repo/offloadd.sources" <<SOURCES
# /etc/apt/sources.list.d/offloadd.sources: offloadd's apt repository (deb822, see sources.list(5)).
# URIs: where this directory (packages/apt/) is published; the key: install
# $KEYRING_NAME.gpg from it as /usr/share/keyrings/$KEYRING_NAME.gpg.
Types: deb
URIs: ${OFFLOADD_APT_URI:-https://offloadd.example.org/apt}
Suites: $APT_SUITE
Components: $APT_COMPONENT
Signed-By: /usr/share/keyrings/$KEYRING_NAME.gpg
SOURCES
}

# Every artifact of the release, by name, as sha256sum -c reads it; signed with the release key.
# Not the signatures, nor the public key itself: it is what verifies this file.
checksums() {
  local out="$1" version="$2"
  (
    cd "$out"
    rm -f SHA256SUMS SHA256SUMS.asc
    find . -maxdepth 1 -type f \( -name "offloadd_${version}_*.deb" -o -name "offloadd-$version-linux-*.tar.gz" \
      -o -name "offloadd-$version-oci-*.tar" \) -printf '%f\n' |
      LC_ALL=C sort | xargs -r sha256sum > SHA256SUMS
    [ ! -d apt ] || find apt -type f ! -name InRelease ! -name Release.gpg ! -name "$KEYRING_NAME.*" -printf '%p\n' | LC_ALL=C sort |
      xargs -r sha256sum >> SHA256SUMS
  )
  sign_file "$out/SHA256SUMS"
}
