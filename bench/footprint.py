"""Scenario 5: footprint. The installed size of requirements.txt (a fresh virtual environment,
``pip install -r requirements.txt``, then its site-packages measured), and of the deployment
package: the repository's files that .funcignore does not exclude, plus those packages.

The environment is cached under ~/.cache/entra-app-registration-bench/, keyed by the hash of
requirements.txt, so that only the first run needs PyPI.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

from bench.common import ROOT, Context

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "entra-app-registration-bench"


def _size(paths: list[Path]) -> tuple[int, int]:
    """(bytes, files): apparent sizes, as a zip would hold them before compression."""
    total = files = 0
    for path in paths:
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
            files += 1
    return total, files


# What venv itself puts there (not deployed: the Functions build installs the requirements alone).
VENV_TOOLING = ("pip", "setuptools", "_distutils_hack", "pkg_resources", "distutils-precedence.pth")


def _tooling(name: str) -> bool:
    return name.split("-")[0] in VENV_TOOLING or name in VENV_TOOLING


def _tree(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, names in os.walk(root) for f in names]


def _environment() -> Path:
    """site-packages of a cached venv with exactly requirements.txt installed."""
    requirements = (ROOT / "requirements.txt").read_bytes()
    key = hashlib.sha256(requirements + sys.version.encode()).hexdigest()[:16]
    home = CACHE / f"venv-{key}"
    stamp = home / ".installed"
    if not stamp.exists():
        shutil.rmtree(home, ignore_errors=True)
        venv.create(home, with_pip=True)
        python = home / "bin" / "python"
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                str(ROOT / "requirements.txt"),
            ],
            check=True,
        )
        stamp.touch()
    return next(home.glob("lib/python*/site-packages"))


def _funcignore_patterns() -> list[str]:
    lines = (ROOT / ".funcignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def _ignored(relative: str, patterns: list[str]) -> bool:
    """gitignore-style, as .funcignore uses it here: a pattern without a slash matches any path
    component; one with a slash matches from the root."""
    parts = relative.split("/")
    for pattern in patterns:
        if "/" in pattern.strip("/"):
            if fnmatch.fnmatch(relative, pattern.lstrip("/")) or relative.startswith(
                pattern.lstrip("/") + "/"
            ):
                return True
        elif any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


def deployed_files() -> list[Path]:
    """The repository's files (tracked or not, minus .gitignore'd) that .funcignore keeps."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    patterns = _funcignore_patterns()
    return [ROOT / name for name in listed.split("\0") if name and not _ignored(name, patterns)]


async def run(ctx: Context) -> dict[str, Any]:
    app_bytes, app_files = _size(deployed_files())
    result: dict[str, Any] = {"appBytes": app_bytes, "appFiles": app_files}
    try:
        site = _environment()
    except (subprocess.CalledProcessError, OSError) as error:
        result["error"] = f"could not install requirements.txt: {error}"
        print(f"[5] footprint: {result['error']}")
        return result
    venv_bytes, _ = _size(_tree(site.parent.parent.parent))
    installed = [p for p in _tree(site) if not _tooling(p.relative_to(site).parts[0])]
    packages_bytes, packages_files = _size(installed)
    by_package: dict[str, int] = {}
    for entry in site.iterdir():
        if entry.is_dir() and not entry.name.endswith(".dist-info") and not _tooling(entry.name):
            by_package[entry.name] = _size(_tree(entry))[0]
    top = sorted(by_package.items(), key=lambda kv: -kv[1])[:6]
    result |= {
        "venvMB": round(venv_bytes / 1e6, 1),
        "packagesMB": round(packages_bytes / 1e6, 1),
        "packagesFiles": packages_files,
        "largest": {name: round(size / 1e6, 1) for name, size in top},
        "deploymentMB": round((packages_bytes + app_bytes) / 1e6, 1),
        "deploymentFiles": packages_files + app_files,
        "appKB": round(app_bytes / 1e3, 1),
    }
    print(
        f"[5] footprint: requirements.txt installs {result['packagesMB']} MB in {packages_files:,} files "
        f"(the whole venv {result['venvMB']} MB) "
        f"(largest: {', '.join(f'{k} {v} MB' for k, v in result['largest'].items())}); the app's own files "
        f"{result['appKB']} kB in {app_files}; deployment package {result['deploymentMB']} MB in "
        f"{result['deploymentFiles']:,} files"
    )
    return result
