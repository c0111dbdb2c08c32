"""Images for docker-compose.yml built from Debian's packages, for machines without Docker Hub.

The base is Debian bookworm made by `debootstrap` (python3 and its venv module, the
machine's own extra CA certificates, so a TLS-intercepting proxy it trusts is trusted
inside too) and loaded with `docker import`; Redis and Prometheus are Debian's packages
on that base (deploy/local-images/). Each image is built once per machine and kept.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

from scripts.stack import ROOT

BASE = "inferq-base:bookworm"
REDIS = "inferq-redis:bookworm"
PROMETHEUS = "inferq-prometheus:bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = "python3,python3-venv,ca-certificates"
LOCAL_CAS = Path("/usr/local/share/ca-certificates")


def has_image(name: str) -> bool:
    done = subprocess.run(["docker", "image", "inspect", name], capture_output=True)
    return done.returncode == 0


def ensure_images() -> dict[str, float]:
    """Build whichever local image is missing; the seconds each build took."""
    took = {}
    for name, build in ((BASE, _build_base), (REDIS, _build_redis), (PROMETHEUS, _build_prom)):
        if not has_image(name):
            began = time.monotonic()
            build()
            took[name] = round(time.monotonic() - began, 1)
    return took


def _build_base() -> None:
    if not shutil.which("debootstrap"):
        raise SystemExit("building the base image needs debootstrap (Debian: debootstrap)")
    with tempfile.TemporaryDirectory(prefix="inferq-rootfs-") as scratch:
        root = Path(scratch) / "rootfs"
        _run("debootstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm", str(root),
             MIRROR)  # fmt: skip
        # As Docker's own Debian images do: packages installed later start no services.
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        if LOCAL_CAS.is_dir():
            for cert in LOCAL_CAS.glob("*.crt"):
                shutil.copy(cert, root / "usr/local/share/ca-certificates" / cert.name)
            _run("chroot", str(root), "update-ca-certificates")
        for leftover in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for path in (root / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        _run("docker", "import", "--change", 'CMD ["/bin/bash"]', "-", BASE, stdin=tar.stdout)
        tar.wait()


def _build_redis() -> None:
    _build_local("redis.Dockerfile", REDIS)


def _build_prom() -> None:
    _build_local("prometheus.Dockerfile", PROMETHEUS)


def _build_local(dockerfile: str, name: str) -> None:
    folder = ROOT / "deploy" / "local-images"
    _run("docker", "build", "--network", "host", "--build-arg", f"BASE_IMAGE={BASE}",
         "-f", str(folder / dockerfile), "-t", name, str(folder))  # fmt: skip


def _run(*cmd: str, stdin: IO[bytes] | None = None) -> None:
    done = subprocess.run(cmd, stdin=stdin, capture_output=True)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")[-4000:]
        raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{output}")
