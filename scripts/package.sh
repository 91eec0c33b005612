#!/usr/bin/env bash
# Builds the Debian package: dist/pgfailover_<version>_<arch>.deb, with dpkg-buildpackage from
# debian/ (Depends computed by dpkg-shlibdeps), then runs lintian on it. The source is copied
# (tracked and untracked-but-not-ignored files, so uncommitted work is packaged as it is) into
# build-deb/; its cmake build folder is kept between runs, so a rebuild takes seconds (ccache).
#
# Environment: JOBS (nproc), SKIP_DEPS=1 (do not check the build dependencies' packages),
# SKIP_LINTIAN=1.
set -euo pipefail

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
JOBS=${JOBS:-$(nproc)}
say() { printf 'package: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

for tool in dpkg-buildpackage dh git; do
  command -v "$tool" >/dev/null || die "$tool is missing: run scripts/install-deps.sh"
done

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
cmake_version=$(sed -n 's/^project(pgfailover VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
[[ $version == "$cmake_version" ]] ||
  die "debian/changelog says $version, CMakeLists.txt $cmake_version: add a changelog entry (dch -v $cmake_version)"
arch=$(dpkg-architecture -qDEB_HOST_ARCH)

if [[ ${SKIP_DEPS:-0} != 1 ]]; then
  dpkg-checkbuilddeps debian/control || die "build dependencies missing: run scripts/install-deps.sh"
fi

work=$REPO_ROOT/build-deb
src=$work/pgfailover-$version
mkdir -p "$src"
# A fresh copy of the tree each time; only obj-* (dh's cmake build folder) is kept.
find "$src" -mindepth 1 -maxdepth 1 ! -name 'obj-*' -exec rm -rf -- {} +
git ls-files -z --cached --others --exclude-standard | tar -c --null -T - -f - | tar -x -C "$src" -f -

cmake_args=()
if command -v ccache >/dev/null; then cmake_args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
say "building pgfailover $version for $arch in $src (log: $work/build.log)"
started=$SECONDS
if ! (cd "$src" && PGFAILOVER_CMAKE_ARGS="${cmake_args[*]}" DEB_BUILD_OPTIONS="parallel=$JOBS" \
  dpkg-buildpackage -b -uc -us --no-pre-clean >"$work/build.log" 2>&1); then
  tail -n 40 "$work/build.log" >&2
  die "dpkg-buildpackage failed (log: $work/build.log)"
fi
deb=pgfailover_${version}_${arch}.deb
mkdir -p dist
cp -- "$work/$deb" "dist/$deb"
say "built dist/$deb in $((SECONDS - started)) s"
dpkg-deb --field "dist/$deb" Depends | sed 's/^/package: Depends: /' >&2

if [[ ${SKIP_LINTIAN:-0} != 1 ]]; then
  command -v lintian >/dev/null || die "lintian is missing: run scripts/install-deps.sh"
  # Each remaining tag is explained in debian/pgfailover.lintian-overrides.
  # lintian refuses to be trusted as root: it runs as nobody then.
  run_lintian=(lintian)
  if ((EUID == 0)); then run_lintian=(setpriv --reuid=nobody --regid=nogroup --clear-groups lintian); fi
  if ! HOME=/tmp "${run_lintian[@]}" --fail-on warning,error --info "dist/$deb"; then
    die "lintian found problems in dist/$deb"
  fi
  say "lintian: clean"
fi
echo "$REPO_ROOT/dist/$deb"
