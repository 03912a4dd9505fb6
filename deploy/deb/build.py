"""Builds Siaga's Debian packages (``make deb``): siaga-gateway (all architectures) and siaga-server (amd64, arm64).

Each package carries a wheelhouse: the siaga wheel and the exact dependency
wheels its daemon needs, pinned with their hashes in ``requirements.txt``.
The package's postinst makes ``/opt/siaga/...`` a virtualenv of the machine's
own ``/usr/bin/python3`` from those wheels, so one gateway package built here
(the gateway's dependencies are all pure Python) serves every Raspberry Pi.
Standard library only; run it with the project's virtualenv (it calls its pip).

    python deploy/deb/build.py [--out dist/deb] [--only gateway|server] [--version 0.2.0~rc1]
"""

from __future__ import annotations

import argparse
import ast
import configparser
import contextlib
import fcntl
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

#: What the siaga wheel is built from (copied to a scratch folder first: the build never writes in the clone).
WHEEL_SOURCES = ("firmware_bridge", "gateway", "dashboard", "sim", "setup.cfg", "pyproject.toml", "README.md")
#: Besides the wheel's sources, what a package is made of: a change to any of these is a new package.
PACKAGE_SOURCES = (
    "deploy/deb",
    "deploy/systemd/siaga-gateway.service",
    "deploy/systemd/siaga-dashboard.service",
    "deploy/gateway.example.toml",
    "deploy/dashboard.example.toml",
)

#: What gateway/ and firmware_bridge/ import beyond the standard library (checked in a fresh virtualenv
#: holding only these: every module of both imports). Their version bounds come from setup.cfg.
GATEWAY_DEPENDENCIES = ("paho-mqtt", "gpiozero", "pyserial", "fastjsonschema", "prometheus-client")

#: bookworm's python3 (Debian 12 and Raspberry Pi OS): platform wheels must be built for it.
PYTHON_VERSION = "3.11"
PYTHON_ABI = "cp311"

#: Debian architecture -> (platform_machine, pip --platform tags).
MACHINES = {
    "amd64": ("x86_64", ("manylinux2014_x86_64",)),
    "arm64": ("aarch64", ("manylinux2014_aarch64",)),
    # Raspberry Pi OS 32-bit: only used to resolve the gateway's (pure) wheels for the narrowest Pi.
    "armhf": ("armv7l", ("manylinux2014_armv7l", "linux_armv7l")),
}

MAINTAINER = "Siaga maintainers <maintainers@siaga.invalid>"


class BuildError(RuntimeError):
    """The packages cannot be built as asked; the message says why."""


@dataclass(frozen=True)
class Package:
    """One Debian package: what goes in it and what its maintainer scripts are told."""

    name: str
    arch: str  # "all" or a Debian architecture
    #: The architecture whose wheels it carries (for "all": the one the pure wheels are resolved for).
    wheel_arch: str
    #: Requirement names from setup.cfg, or None for every one of them.
    dependencies: tuple[str, ...] | None
    venv: str
    units: tuple[str, ...]
    examples: tuple[str, ...]
    #: The console script /usr/bin links to, also the postinst's check that the virtualenv runs.
    command: str
    #: Console scripts of the siaga wheel that cannot run in this virtualenv (their dependencies are absent).
    drop_scripts: tuple[str, ...]
    #: System groups the siaga user joins (created when the machine has none).
    extra_groups: tuple[str, ...]
    #: The other siaga package that shares /etc/siaga and /var/lib/siaga (purge leaves them while it is there).
    sibling: str

    @property
    def pure(self) -> bool:
        return self.arch == "all"


def gateway_package() -> Package:
    return Package(
        name="siaga-gateway",
        arch="all",
        wheel_arch="armhf",
        dependencies=GATEWAY_DEPENDENCIES,
        venv="/opt/siaga/venv",
        units=("siaga-gateway.service",),
        examples=("gateway.example.toml",),
        command="siaga-gateway",
        drop_scripts=("siaga-dashboard", "siaga-sim"),
        # gpio: the buttons, LEDs and buzzers; spi: supervised loops' ADC (gateway/loops.py);
        # dialout: the LoRa module's serial port.
        extra_groups=("gpio", "spi", "dialout"),
        sibling="siaga-server",
    )


def server_package(arch: str) -> Package:
    return Package(
        name="siaga-server",
        arch=arch,
        wheel_arch=arch,
        dependencies=None,
        # Not /opt/siaga/venv: a machine may run both packages (a fire post with its own buttons).
        venv="/opt/siaga/server-venv",
        units=("siaga-dashboard.service",),
        examples=("dashboard.example.toml",),
        command="siaga-dashboard",
        drop_scripts=(),
        extra_groups=(),
        sibling="siaga-gateway",
    )


# --- versions ---------------------------------------------------------------------------------------------

_PEP440 = re.compile(
    r"^(?P<release>\d+(?:\.\d+)*)(?:(?P<pre>a|b|rc)(?P<pre_n>\d+))?(?:\.post(?P<post>\d+))?(?:\.dev(?P<dev>\d+))?$"
)


def project_version() -> str:
    """``firmware_bridge.__version__``, read without importing the package."""
    text = (ROOT / "firmware_bridge" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if not match:
        raise BuildError("firmware_bridge/__init__.py has no __version__")
    return match.group(1)


def debian_version(version: str) -> str:
    """A PEP 440 version as Debian orders it: 0.2.0rc1 -> 0.2.0~rc1, 0.2.0.dev3 -> 0.2.0~~dev3 (before the release)."""
    match = _PEP440.match(version)
    if not match:
        raise BuildError(f"version {version!r}: not a release, pre-release, post or dev release that build.py knows")
    parts = [match["release"]]
    if match["pre"]:
        parts.append(f"~{match['pre']}{match['pre_n']}")
    if match["post"]:
        parts.append(f"+post{match['post']}")
    if match["dev"]:
        # PEP 440: 1.0.dev1 < 1.0a1 < 1.0rc1 < 1.0; "~~" sorts before "~a" in Debian, as dev before alpha.
        parts.append(f"{'~' if match['pre'] else '~~'}dev{match['dev']}")
    return "".join(parts)


# --- requirements -----------------------------------------------------------------------------------------


def install_requires() -> list[str]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    lines = (line.strip() for line in parser["options"]["install_requires"].splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    if not match:
        raise BuildError(f"setup.cfg: cannot read the requirement {requirement!r}")
    return normalise(match.group(0))


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def marker_holds(marker: str, machine: str) -> bool:
    """Whether a setup.cfg marker holds on ``machine``.

    pip evaluates markers for the machine it runs on, even with ``--platform``; ours name only
    ``platform_machine`` (``==``, ``!=``, ``and``, ``or``), so they are evaluated here for the target.
    """
    return _holds(ast.parse(marker.strip(), mode="eval").body, marker, machine)


def _holds(node: ast.expr, marker: str, machine: str) -> bool:
    if isinstance(node, ast.BoolOp):
        values = [_holds(value, marker, machine) for value in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if (
        isinstance(node, ast.Compare)
        and isinstance(node.left, ast.Name)
        and node.left.id == "platform_machine"
        and len(node.ops) == 1
        and isinstance(node.ops[0], ast.Eq | ast.NotEq)
        and isinstance(node.comparators[0], ast.Constant)
    ):
        equal = machine == node.comparators[0].value
        return equal if isinstance(node.ops[0], ast.Eq) else not equal
    raise BuildError(f"setup.cfg marker {marker!r}: build.py evaluates only platform_machine ==/!= markers")


def requirements_for(package: Package) -> list[str]:
    """The package's top-level requirements from setup.cfg, markers resolved for its wheels' machine."""
    machine = MACHINES[package.wheel_arch][0]
    chosen = []
    for line in install_requires():
        spec, _, marker = line.partition(";")
        if marker and not marker_holds(marker, machine):
            continue
        if package.dependencies is None or requirement_name(spec) in map(normalise, package.dependencies):
            chosen.append(spec.strip())
    if package.dependencies is not None:
        missing = set(map(normalise, package.dependencies)) - {requirement_name(r) for r in chosen}
        if missing:
            raise BuildError(f"{package.name}: {sorted(missing)} not in setup.cfg's install_requires")
    return chosen


# --- the dependency wheels, resolved once and cached --------------------------------------------------------


def default_cache() -> Path:
    if os.environ.get("SIAGA_DEB_CACHE"):
        return Path(os.environ["SIAGA_DEB_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "siaga-deb"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``path`` (two builds at once share the cache, one writing at a time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def wheel_tags(filename: str) -> tuple[str, str, str]:
    """(python, abi, platform) tags of a wheel file name."""
    parts = filename[: -len(".whl")].split("-")
    return parts[-3], parts[-2], parts[-1]


def check_wheel(package: Package, filename: str) -> None:
    """Refuses a wheel that cannot run where the package is installed."""
    _python, abi, platform = wheel_tags(filename)
    if platform == "any" and abi == "none":
        return
    if package.pure:
        raise BuildError(
            f"{package.name} is Architecture: all, but {filename} is a platform wheel: "
            "install it from Debian instead, or make the package per architecture"
        )
    machine = MACHINES[package.wheel_arch][0]
    if not all(tag.endswith("_" + machine) for tag in platform.split(".")):
        raise BuildError(f"{package.name} ({package.arch}): {filename} is not for {machine}")
    if abi not in (PYTHON_ABI, "abi3", "none"):
        raise BuildError(f"{package.name}: {filename} is not for CPython {PYTHON_VERSION}")


def dependency_wheels(package: Package, cache: Path, refresh: bool) -> Path:
    """A folder with the package's dependency wheels and their pinned ``requirements.txt``, from the cache.

    The cache is keyed by the requirements and the platform: it is resolved again (PyPI, through pip's
    own cache) only when setup.cfg's requirements change or ``refresh`` asks for the newest versions.
    """
    requirements = requirements_for(package)
    platforms = MACHINES[package.wheel_arch][1]
    key_text = "\n".join([*requirements, *platforms, PYTHON_VERSION, PYTHON_ABI])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    folder = cache / f"{package.name}-{package.wheel_arch}-{key}"
    with locked(cache / ".lock"):
        if (folder / "requirements.txt").exists() and not refresh:
            return folder
        partial = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=cache))
        try:
            download(requirements, platforms, partial)
            pins = pinned_requirements(package, partial)
            (partial / "requirements.txt").write_text(pins)
            shutil.rmtree(folder, ignore_errors=True)
            partial.rename(folder)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return folder


def download(requirements: list[str], platforms: Iterable[str], into: Path) -> None:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    command += ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp"]
    command += ["--abi", PYTHON_ABI, "--abi", "abi3", "--abi", "none"]
    for platform in platforms:
        command += ["--platform", platform]
    command += ["--dest", str(into), *requirements]
    print(f"resolving {len(requirements)} requirement(s) for {', '.join(platforms)}", file=sys.stderr)
    run(command)


def pinned_requirements(package: Package, folder: Path) -> str:
    """``name==version --hash=sha256:...`` for every wheel in ``folder`` (the complete set: pip gets --no-deps)."""
    lines = []
    for wheel in sorted(folder.glob("*.whl")):
        check_wheel(package, wheel.name)
        name, version = wheel.name.split("-")[:2]
        lines.append(f"{normalise(name)}=={version} --hash=sha256:{sha256_of(wheel)}")
    if not lines:
        raise BuildError(f"{package.name}: pip downloaded no wheels")
    return "\n".join(lines) + "\n"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- the siaga wheel --------------------------------------------------------------------------------------


def ignored(_folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n in ("__pycache__", "build") or n.endswith((".pyc", ".egg-info"))}


def build_siaga_wheel(into: Path) -> Path:
    """The project's wheel, built from a copy of its sources (setuptools writes build/ and egg-info beside them)."""
    with tempfile.TemporaryDirectory(prefix="siaga-wheel-") as scratch:
        source = Path(scratch) / "src"
        source.mkdir()
        for name in WHEEL_SOURCES:
            path = ROOT / name
            if path.is_dir():
                shutil.copytree(path, source / name, ignore=ignored)
            else:
                shutil.copy2(path, source / name)
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps"]
        command += ["--no-build-isolation", "--wheel-dir", str(into), str(source)]
        run(command)
    wheels = list(into.glob("siaga-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one siaga wheel in {into}, found {wheels}")
    return wheels[0]


# --- the package tree -------------------------------------------------------------------------------------


def render(template: str, values: dict[str, str]) -> str:
    """``@NAME@`` placeholders filled in; a placeholder left over is a mistake in the template."""
    for name, value in values.items():
        template = template.replace(f"@{name}@", value)
    leftover = re.findall(r"@[A-Z_]+@", template)
    if leftover:
        raise BuildError(f"placeholders without a value: {sorted(set(leftover))}")
    return template


def script_values(package: Package, version: str) -> dict[str, str]:
    return {
        "PACKAGE": package.name,
        "VERSION": version,
        "VENV": package.venv,
        "WHEELHOUSE": f"/usr/lib/{package.name}/wheels",
        "UNITS": " ".join(package.units),
        "EXAMPLES": " ".join(package.examples),
        "COMMAND": package.command,
        "DROP_SCRIPTS": " ".join(package.drop_scripts),
        "EXTRA_GROUPS": " ".join(package.extra_groups),
        "SIBLING": package.sibling,
    }


def write(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    path.chmod(mode)


def package_tree(package: Package, version: str, siaga_wheel: Path, wheels: Path, tree: Path) -> None:
    values = script_values(package, version)
    wheelhouse = tree / values["WHEELHOUSE"].lstrip("/")
    wheelhouse.mkdir(parents=True)
    for wheel in sorted(wheels.glob("*.whl")):
        shutil.copy(wheel, wheelhouse / wheel.name)
    shutil.copy(siaga_wheel, wheelhouse / siaga_wheel.name)
    pins = (wheels / "requirements.txt").read_text()
    pins += f"siaga=={siaga_wheel.name.split('-')[1]} --hash=sha256:{sha256_of(siaga_wheel)}\n"
    write(wheelhouse / "requirements.txt", pins)
    for example in package.examples:
        write(tree / "usr/share" / package.name / example, (ROOT / "deploy" / example).read_text())
    for unit in package.units:
        write(tree / "lib/systemd/system" / unit, (ROOT / "deploy/systemd" / unit).read_text())
    link = tree / "usr/bin" / package.command
    link.parent.mkdir(parents=True)
    link.symlink_to(f"{package.venv}/bin/{package.command}")
    docs = tree / "usr/share/doc" / package.name
    write(docs / "copyright", (HERE / "copyright").read_text())
    write(docs / "changelog.Debian.gz", changelog(package, version))
    for script in ("postinst", "prerm", "postrm"):
        write(tree / "DEBIAN" / script, render((HERE / f"{script}.in").read_text(), values), 0o755)
    control = render(
        (HERE / f"{package.name}.control").read_text(),
        {
            "VERSION": version,
            "ARCH": package.arch,
            "MAINTAINER": MAINTAINER,
            "INSTALLED_SIZE": str(installed_size(tree)),
        },
    )
    write(tree / "DEBIAN/control", control)


def changelog(package: Package, version: str) -> bytes:
    """A one-entry changelog (policy asks every package for one); the project's history is its git log."""
    date = format_datetime(datetime.now(UTC))
    text = (
        f"{package.name} ({version}) bookworm; urgency=medium\n\n"
        f"  * Built from the Siaga source tree by deploy/deb/build.py.\n\n"
        f" -- {MAINTAINER}  {date}\n"
    )
    return gzip.compress(text.encode(), mtime=0)


def installed_size(tree: Path) -> int:
    """KiB, as dpkg counts them (the files outside DEBIAN/)."""
    total = 0
    for path in tree.rglob("*"):
        if "DEBIAN" in path.relative_to(tree).parts[:1]:
            continue
        total += path.lstat().st_size if path.is_file() or path.is_symlink() else 1024
    return max(1, (total + 1023) // 1024)


def build_deb(tree: Path, out: Path, package: Package, version: str) -> Path:
    target = out / f"{package.name}_{version}_{package.arch}.deb"
    # Wheels are zip files already: xz packed the server's 38 MB 0.1 % smaller than gzip in ten times the
    # time (20 s against 1.6 s), so gzip.
    run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z6", "--build", str(tree), str(target)], quiet=True)
    return target


# --- running ----------------------------------------------------------------------------------------------


def run(command: list[str], quiet: bool = False) -> None:
    result = subprocess.run(command, stdout=subprocess.PIPE if quiet else None, text=True)
    if result.returncode != 0:
        raise BuildError(f"{command[0]} {command[1] if len(command) > 1 else ''} failed (exit {result.returncode})")


def input_digest(packages: Iterable[Package], version: str) -> str:
    """A digest of everything the packages are built from: the same digest, the same packages."""
    digest = hashlib.sha256(version.encode())
    for package in packages:
        digest.update(repr(package).encode())
        digest.update("\n".join(requirements_for(package)).encode())
    for name in sorted([*WHEEL_SOURCES, *PACKAGE_SOURCES]):
        path = ROOT / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            digest.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def chosen_packages(only: list[str] | None, server_archs: list[str]) -> list[Package]:
    packages = []
    if not only or "gateway" in only:
        packages.append(gateway_package())
    if not only or "server" in only:
        packages += [server_package(arch) for arch in server_archs]
    return packages


def build(packages: list[Package], out: Path, version: str, cache: Path, refresh: bool = False) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    built = []
    with tempfile.TemporaryDirectory(prefix="siaga-deb-") as scratch:
        siaga_wheel = build_siaga_wheel(Path(scratch) / "wheel")
        for package in packages:
            wheels = dependency_wheels(package, cache, refresh)
            tree = Path(scratch) / f"{package.name}_{package.arch}"
            package_tree(package, version, siaga_wheel, wheels, tree)
            built.append(build_deb(tree, out, package, version))
    return built


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Build Siaga's Debian packages.")
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "deb", help="where the .deb files go (dist/deb)")
    parser.add_argument("--only", action="append", choices=("gateway", "server"), help="build only this (repeatable)")
    parser.add_argument("--server-arch", action="append", choices=("amd64", "arm64"), help="default: both")
    parser.add_argument("--version", help="the Debian version (default: from firmware_bridge.__version__)")
    parser.add_argument("--cache", type=Path, default=None, help="dependency wheels (default ~/.cache/siaga-deb)")
    parser.add_argument("--refresh", action="store_true", help="resolve the dependencies again (newest versions)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        version = args.version or debian_version(project_version())
        packages = chosen_packages(args.only, args.server_arch or ["amd64", "arm64"])
        built = build(packages, args.out, version, args.cache or default_cache(), args.refresh)
    except BuildError as exc:
        print(f"build.py: {exc}", file=sys.stderr)
        return 1
    for path in built:
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  {path.stat().st_size / 1e6:.1f} MB")
    print(f"{len(built)} package(s) in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
