"""Before a part runs: the Debian packages it needs and the pgfailover binary (a Release build in
build-bench/, or PGFAILOVER_BIN), copied into the work folder so a rebuild mid-run changes nothing."""
import os
import shutil
import time

from . import env
from .util import log, sh


def install_deps():
    missing = []
    for p in env.PACKAGES:
        r = sh(["dpkg-query", "-W", "-f=${Status}", p], check=False)
        if "install ok installed" not in r.stdout:
            missing.append(p)
    if not missing:
        log("all packages already installed")
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"missing packages {missing}: run as root so apt-get can install them")
    log(f"installing {' '.join(missing)}")
    apt_env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sh(["apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=600", "--no-install-recommends", *missing],
       env=apt_env, timeout=1800)


def build():
    if os.environ.get("PGFAILOVER_BIN"):
        log(f"using PGFAILOVER_BIN={env.PGF_BIN} (no build)")
        freeze_binary()
        return
    log(f"building pgfailover in {env.BUILD_DIR}")
    sh(["cmake", "-S", env.REPO, "-B", env.BUILD_DIR, "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_TESTING=OFF"], timeout=600)
    sh(["cmake", "--build", env.BUILD_DIR, "--target", "pgfailover", "-j2"], timeout=3600)
    freeze_binary()


def freeze_binary():
    """Copy the binary into the work folder, so a rebuild by someone else mid-run changes nothing,
    and remember what it was built from."""
    os.makedirs(os.path.join(env.WORK, "bin"), exist_ok=True)
    frozen = os.path.join(env.WORK, "bin", "pgfailover")
    shutil.copy2(env.PGF_BIN, frozen)
    os.chmod(frozen, 0o755)
    rev = sh(["git", "-C", env.REPO, "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
    dirty = sh(["git", "-C", env.REPO, "status", "--porcelain", "--", "src", "CMakeLists.txt"], check=False).stdout.strip()
    sha = sh(["sha256sum", frozen], check=False).stdout.split()[0][:16]
    env.PROVENANCE.update({"git": rev + (" + uncommitted changes in src/" if dirty else ""), "binary_sha256": sha,
                           "binary_mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(os.path.getmtime(env.PGF_BIN)))})
    log(f"pgfailover binary: {env.PROVENANCE}")
    env.PGF_BIN = frozen
