"""The Debian packages installed as a technician would: `apt install ./siaga-gateway_*.deb` on a fresh bookworm.

The packages are built by deploy/deb/build.py (reused while their inputs are
unchanged); the bookworm root is made once by debootstrap and kept as a tarball
in /var/cache/siaga-test (SIAGA_TEST_CACHE), since CI runs a fresh clone on
the same machine; each root the tests install into is a fresh copy under /var/tmp/siaga-install
(an overlay on the unpacked tarball) and installs into it through chroot, with /proc mounted.

A later stage can use ``installed_root`` (the gateway installed, /proc mounted;
one per module and xdist worker) and ``run_in_root`` to enrol, run and
commission the installed gateway.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from firmware_bridge import __version__
from sim.mosquitto import free_port, wait_for_port
from sim.webclient import DashboardClient

from .test_enrolment import FIRE, Site, _issue, _plan
from .test_enrolment import site as enrolment_site  # noqa: F401 (the enrolment tests' fixture)
from .waiting import poll_until

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("SIAGA_TEST_CACHE", "/var/cache/siaga-test"))
ROOTS = Path(os.environ.get("SIAGA_TEST_ROOTS", "/var/tmp/siaga-install"))
MIRROR = os.environ.get("SIAGA_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
#: What a fresh Raspberry Pi OS Lite has that the package needs; minbase brings apt, dpkg, coreutils.
INCLUDE = ("python3", "python3-venv", "systemd", "adduser", "ca-certificates")
#: A login shell's environment in the root: nothing of the test process (PIP_*, PYTHONPATH) leaks in.
ROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
}
#: Both live in /usr/sbin, which a non-login PATH may lack.
DEBOOTSTRAP = shutil.which("debootstrap", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
CHROOT = shutil.which("chroot", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") or "/usr/sbin/chroot"
#: apt without a pseudo-terminal (no /dev/pts in the root).
APT = ("apt", "-y", "-o", "Dpkg::Use-Pty=0", "-o", "APT::Color=0")

pytestmark = [
    pytest.mark.slow,
    # A cold cache runs debootstrap (about a minute) inside the first test's fixtures.
    pytest.mark.timeout(600),
    pytest.mark.skipif(os.geteuid() != 0, reason="chroot and debootstrap need root"),
    pytest.mark.skipif(DEBOOTSTRAP is None, reason="debootstrap is not installed (make test installs it)"),
]


# --- the bookworm root -------------------------------------------------------------------------------------


def locked(path: Path) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock on ``path``: xdist workers and CI runs on this machine share the cache (the build's own)."""
    return build_module().locked(path)


def bookworm_tarball() -> Path:
    """A minimal bookworm with ``INCLUDE``, made by debootstrap once per include list and kept."""
    key = hashlib.sha256(" ".join([SUITE, "minbase", MIRROR, *INCLUDE]).encode()).hexdigest()[:12]
    tarball = CACHE / f"{SUITE}-{key}.tar"
    with locked(CACHE / ".lock"):
        if tarball.exists():
            return tarball
        scratch = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=CACHE))
        try:
            subprocess.run(
                [DEBOOTSTRAP, "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE, scratch / "root", MIRROR],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            shutil.rmtree(scratch / "root/var/cache/apt/archives", ignore_errors=True)
            (scratch / "root/var/cache/apt/archives/partial").mkdir(parents=True)
            partial = tarball.with_suffix(".tar.partial")
            subprocess.run(["tar", "--numeric-owner", "-C", scratch / "root", "-cf", partial, "."], check=True)
            partial.rename(tarball)
        finally:
            refuse_if_mounted(scratch)
            shutil.rmtree(scratch)
    return tarball


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first."""
    prefix = str(path.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def refuse_if_mounted(path: Path) -> None:
    """Deleting a tree with a file system mounted in it deletes into that file system: never."""
    if mounts_under(path):
        raise RuntimeError(f"{path} still has mounts {mounts_under(path)}: not deleting it")


def sweep_stale_roots() -> None:
    """Roots left by a test process that died (killed by CI, say): unmount what it left and delete them."""
    if not ROOTS.exists():
        return
    for folder in ROOTS.iterdir():
        pid = folder.name.split("-")[0]
        if pid.isdigit() and Path(f"/proc/{pid}").exists():
            continue
        for point in mounts_under(folder):
            subprocess.run(["umount", "--lazy", point], check=False)
        refuse_if_mounted(folder)
        shutil.rmtree(folder, ignore_errors=True)


def bookworm_tree(tarball: Path) -> Path:
    """The tarball unpacked once beside it: the read-only lower layer every test's root is made over."""
    tree = tarball.with_suffix(".root")
    done = tree.with_suffix(".root.done")
    with locked(tarball.parent / ".lock-tree"):
        if not done.exists():
            shutil.rmtree(tree, ignore_errors=True)
            tree.mkdir()
            # debootstrap made /dev's nodes in the tarball: only /proc is mounted, so nothing of the
            # host's /dev or /sys is reachable from a root (nor deletable by a cleanup gone wrong).
            subprocess.run(["tar", "--numeric-owner", "-C", tree, "-xpf", tarball], check=True)
            done.touch()
    return tree


@contextlib.contextmanager
def bookworm_root(tarball: Path | None = None) -> Iterator[Path]:
    """A fresh bookworm (an overlay on the cached tree) with /proc mounted; always unmounted and deleted.

    The overlay costs nothing to make, where unpacking the 240 MB tarball for each root took 4-9 s.
    """
    lower = bookworm_tree(tarball or bookworm_tarball())
    sweep_stale_roots()
    ROOTS.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=ROOTS))
    root = folder / "root"
    try:
        for name in ("upper", "work", "root"):
            (folder / name).mkdir()
        with overlay_mounted(lower, folder), proc_mounted(root):
            yield root
    finally:
        refuse_if_mounted(folder)
        shutil.rmtree(folder)


@contextlib.contextmanager
def overlay_mounted(lower: Path, folder: Path) -> Iterator[None]:
    """``folder/root``: ``lower`` seen through an overlay whose changes go to ``folder/upper``."""
    options = f"lowerdir={lower},upperdir={folder / 'upper'},workdir={folder / 'work'}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, folder / "root"], check=True)
    try:
        yield
    finally:
        unmount(folder / "root")


def unmount(point: Path) -> None:
    subprocess.run(["umount", point], check=False)
    if mounts_under(point):
        subprocess.run(["umount", "--lazy", point], check=True)


@contextlib.contextmanager
def proc_mounted(root: Path) -> Iterator[None]:
    subprocess.run(["mount", "-t", "proc", "proc", root / "proc"], check=True)
    try:
        yield
    finally:
        unmount(root / "proc")


def run_in_root(
    root: Path, *command: str, env: dict[str, str] | None = None, check: bool = True, cwd: str = "/"
) -> subprocess.CompletedProcess[str]:
    """Runs ``command`` inside ``root`` (chroot) with a clean environment plus ``env``; output captured."""
    variables = [f"{name}={value}" for name, value in {**ROOT_ENV, **(env or {})}.items()]
    result = subprocess.run(
        [CHROOT, root, "env", "-i", *variables, "sh", "-c", 'cd "$0" && exec "$@"', cwd, *command],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode} in {root}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


# --- the packages ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """The packages at the project's version, and the gateway's at a higher one (the upgrade)."""

    version: str
    gateway: Path
    upgrade_version: str
    gateway_upgrade: Path
    #: For this machine's architecture; None where there is no server package for it.
    server: Path | None


#: This machine's Debian architecture, for the server package (platform wheels).
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine)


@functools.cache
def build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("siaga_deb_build", REPO / "deploy/deb/build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def built_packages(build: ModuleType, packages: list, version: str) -> list[Path]:
    """The packages for these inputs: built once per digest of every file they are made from, then reused."""
    digest = build.input_digest(packages, version)[:16]
    folder = CACHE / "debs" / digest
    with locked(CACHE / ".lock-debs"):
        if not (folder / "done").exists():
            shutil.rmtree(folder, ignore_errors=True)
            build.build(packages, folder, version, build.default_cache())
            (folder / "done").touch()
        os.utime(folder)  # used now: the last to be pruned
        prune_builds(keep=folder)
    return sorted(folder.glob("*.deb"))


def prune_builds(keep: Path, count: int = 6) -> None:
    """Only the newest builds stay in the cache (every edit of a source file is a new digest)."""
    folders = sorted((CACHE / "debs").iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    for folder in folders[count:]:
        if folder != keep:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def built() -> Built:
    build = build_module()
    version = build.debian_version(build.project_version())
    upgrade_version = f"{version}+upgradetest1"
    packages = [build.gateway_package()] + ([build.server_package(HOST_ARCH)] if HOST_ARCH else [])
    debs = built_packages(build, packages, version)
    gateway = next(deb for deb in debs if deb.name.startswith("siaga-gateway_"))
    server = next((deb for deb in debs if deb.name.startswith("siaga-server_")), None)
    (gateway_upgrade,) = built_packages(build, [build.gateway_package()], upgrade_version)
    return Built(version, gateway, upgrade_version, gateway_upgrade, server)


def apt_install(root: Path, deb: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Copies ``deb`` into the root's /root and installs it from there: `apt install ./siaga-gateway_*.deb`."""
    shutil.copy(deb, root / "root" / deb.name)
    return run_in_root(root, *APT, "install", *options, f"./{deb.name}", cwd="/root")


@pytest.fixture(scope="module")
def installed_root(built: Built) -> Iterator[Path]:
    """A fresh bookworm with the gateway package installed, /proc mounted, kept for the whole module."""
    with bookworm_root() as root:
        apt_install(root, built.gateway)
        yield root


# --- reading the root ---------------------------------------------------------------------------------------


def names(root: Path, table: str) -> dict[int, str]:
    """uid or gid -> name from the root's /etc/passwd or /etc/group (not the host's)."""
    rows = (line.split(":") for line in (root / "etc" / table).read_text().splitlines() if line)
    return {int(row[2]): row[0] for row in rows}


def owner_mode(root: Path, path: str) -> tuple[str, str, str]:
    """(user, group, octal mode) of ``path`` inside the root."""
    info = (root / path.lstrip("/")).lstat()
    return names(root, "passwd")[info.st_uid], names(root, "group")[info.st_gid], oct(info.st_mode & 0o7777)


def dpkg_version(root: Path, package: str) -> str:
    result = run_in_root(root, "dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", package, check=False)
    return result.stdout.strip()


# --- the fresh install -------------------------------------------------------------------------------------


def test_directories_and_files_have_their_owners_and_modes(installed_root: Path) -> None:
    root = installed_root
    assert owner_mode(root, "/etc/siaga") == ("root", "siaga", "0o750")
    assert owner_mode(root, "/var/lib/siaga") == ("siaga", "siaga", "0o750")
    # The example is readable by the service's group, replaced on upgrade, never a conffile.
    assert owner_mode(root, "/etc/siaga/gateway.example.toml") == ("root", "siaga", "0o640")
    assert (root / "etc/siaga/gateway.example.toml").read_text() == (REPO / "deploy/gateway.example.toml").read_text()
    conffiles = root / "var/lib/dpkg/info/siaga-gateway.conffiles"
    assert not conffiles.exists() or not conffiles.read_text().strip()
    assert owner_mode(root, "/lib/systemd/system/siaga-gateway.service") == ("root", "root", "0o644")
    assert os.readlink(root / "usr/bin/siaga-gateway") == "/opt/siaga/venv/bin/siaga-gateway"
    assert os.readlink(root / "opt/siaga/venv") == "venv.a"
    # Enrolment has not happened: no configuration, no credentials.
    assert sorted(p.name for p in (root / "etc/siaga").iterdir()) == ["gateway.example.toml"]


def test_the_siaga_user_is_a_system_account_in_its_hardware_groups(installed_root: Path) -> None:
    passwd = run_in_root(installed_root, "getent", "passwd", "siaga").stdout.strip().split(":")
    uid, home, shell = int(passwd[2]), passwd[5], passwd[6]
    assert uid < 1000, "a system account"
    assert (home, shell) == ("/var/lib/siaga", "/usr/sbin/nologin")
    groups = run_in_root(installed_root, "id", "-nG", "siaga").stdout.split()
    assert sorted(groups) == ["dialout", "gpio", "siaga", "spi"]
    # gpio and spi did not exist on plain Debian: made as system groups (Raspberry Pi OS has its own).
    for group in ("gpio", "spi", "siaga"):
        assert int(run_in_root(installed_root, "getent", "group", group).stdout.split(":")[2]) < 1000


def import_every_module(root: Path, python: str, *packages: str) -> list[str]:
    """Imports every module of ``packages`` with the root's ``python``; the names imported.

    Left out: ``__main__`` (it runs the command), the MicroPython firmware, and Alembic's revision
    scripts (Alembic runs them).
    """
    script = (
        "import importlib, pkgutil, sys\n"
        "for name in sys.argv[1:]:\n"
        "    package = importlib.import_module(name)\n"
        "    for module in pkgutil.walk_packages(package.__path__, name + '.'):\n"
        "        if module.name.endswith('__main__') or module.name.startswith(\n"
        "            ('firmware_bridge.firmware', 'dashboard.migrations.')\n"
        "        ):\n"
        "            continue\n"
        "        importlib.import_module(module.name)\n"
        "        print(module.name)\n"
    )
    return run_in_root(root, python, "-c", script, *packages).stdout.split()


def test_the_virtualenv_runs_the_gateway_and_holds_every_module_it_imports(installed_root: Path) -> None:
    version = run_in_root(installed_root, "siaga-gateway", "--version").stdout.strip()
    assert version == f"siaga-gateway {__version__}"
    # Every module of gateway/ and firmware_bridge/ imports from the package's wheels alone: a new
    # third-party import missing from build.py's GATEWAY_DEPENDENCIES fails here, not on a Pi.
    imported = import_every_module(installed_root, "/opt/siaga/venv/bin/python", "gateway", "firmware_bridge")
    assert {"gateway.app", "gateway.radio.modules", "firmware_bridge.payloads"} <= set(imported)
    # The dashboard's and simulator's commands are not offered where their dependencies are not.
    bin_names = {p.name for p in (installed_root / "opt/siaga/venv/bin").iterdir()}
    assert "siaga-gateway" in bin_names and not {"siaga-dashboard", "siaga-sim"} & bin_names


def test_the_example_configuration_passes_the_gateways_own_check(installed_root: Path) -> None:
    # The example names the files enrolment writes (credentials, CA): stand-ins in a folder of
    # the test's own, so /etc/siaga stays as the package left it.
    folder = installed_root / "tmp/example-check"
    folder.mkdir()
    for name in ("mqtt-password", "ca.crt"):
        (folder / name).write_text("stand-in\n")
    example = (installed_root / "etc/siaga/gateway.example.toml").read_text()
    (folder / "gateway.toml").write_text(example.replace("/etc/siaga/", "/tmp/example-check/"))
    result = run_in_root(
        installed_root, "siaga-gateway", "--config", "/tmp/example-check/gateway.toml", "--check", check=False
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def verify_unit(root: Path, unit: str) -> None:
    """systemd-analyze of the root's own systemd (252, bookworm's): every key known, ExecStart= there.

    An unknown key is only a warning (exit 0), so any output at all fails.
    """
    result = run_in_root(root, "systemd-analyze", "verify", unit, check=False)
    assert (result.returncode, result.stdout + result.stderr) == (0, ""), f"{unit}: {result.stderr}"


def test_the_installed_unit_verifies_and_is_enabled(installed_root: Path) -> None:
    verify_unit(installed_root, "siaga-gateway.service")
    wants = installed_root / "etc/systemd/system/multi-user.target.wants/siaga-gateway.service"
    assert os.readlink(wants) == "/lib/systemd/system/siaga-gateway.service"
    unit = (installed_root / "lib/systemd/system/siaga-gateway.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=30",
        "ConditionPathExists=/etc/siaga/gateway.toml",
        "RuntimeDirectory=siaga",
        "SupplementaryGroups=gpio spi dialout",
        "ExecStart=/opt/siaga/venv/bin/siaga-gateway --config /etc/siaga/gateway.toml",
    ):
        assert line in unit.splitlines()


# --- upgrade, remove, purge ----------------------------------------------------------------------------------


def leave_site_state(root: Path) -> dict[Path, bytes]:
    """What enrolment and a running gateway leave behind: a configuration and an outbox."""
    config = root / "etc/siaga/gateway.toml"
    config.write_text((REPO / "deploy/gateway.example.toml").read_text() + "\n# the site's own\n")
    outbox = root / "var/lib/siaga/outbox.sqlite"
    outbox.write_bytes(b"presses not yet acknowledged")
    run_in_root(root, "chown", "siaga:siaga", "/var/lib/siaga/outbox.sqlite")
    return {config: config.read_bytes(), outbox: outbox.read_bytes()}


def still_there(kept: dict[Path, bytes]) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in kept if path.exists()}


def check_server_installed(root: Path) -> None:
    """The server package beside the gateway's: its own virtualenv, its platform wheels, its unit."""
    assert run_in_root(root, "siaga-dashboard", "--version").stdout.strip() == f"siaga-dashboard {__version__}"
    imported = import_every_module(root, "/opt/siaga/server-venv/bin/python", "dashboard", "gateway")
    assert {"dashboard.cli", "dashboard.pg", "dashboard.reports.photos"} <= set(imported)
    assert os.readlink(root / "opt/siaga/server-venv") == "server-venv.a"
    assert owner_mode(root, "/etc/siaga/dashboard.example.toml") == ("root", "siaga", "0o640")
    verify_unit(root, "siaga-dashboard.service")


@pytest.mark.skipif(HOST_ARCH is None, reason="no server package for this architecture")
def test_upgrade_keeps_configuration_and_outbox_remove_keeps_them_purge_removes_them(built: Built) -> None:
    assert built.server is not None
    with bookworm_root() as root:
        apt_install(root, built.gateway)
        kept = leave_site_state(root)
        apt_install(root, built.server, "--no-install-recommends")
        check_server_installed(root)

        apt_install(root, built.gateway_upgrade)
        assert dpkg_version(root, "siaga-gateway") == f"installed {built.upgrade_version}"
        assert still_there(kept) == kept
        # The virtualenv was made anew beside the old one, switched to, and the old one deleted.
        assert os.readlink(root / "opt/siaga/venv") == "venv.b"
        assert not (root / "opt/siaga/venv.a").exists()
        assert run_in_root(root, "siaga-gateway", "--version").returncode == 0
        assert owner_mode(root, "/var/lib/siaga/outbox.sqlite")[:2] == ("siaga", "siaga")

        run_in_root(root, *APT, "remove", "siaga-gateway")
        assert dpkg_version(root, "siaga-gateway").startswith("config-files")
        assert still_there(kept) == kept
        assert not (root / "opt/siaga/venv").exists() and not (root / "opt/siaga/venv.b").exists()
        assert not (root / "usr/bin/siaga-gateway").is_symlink()
        assert not (root / "lib/systemd/system/siaga-gateway.service").exists()

        # The server still uses /etc/siaga and /var/lib/siaga: purging the gateway leaves them.
        run_in_root(root, *APT, "purge", "siaga-gateway")
        assert dpkg_version(root, "siaga-gateway") in ("", "not-installed")
        assert still_there(kept) == kept
        assert not (root / "etc/siaga/gateway.example.toml").exists()
        assert not (root / "etc/systemd/system/multi-user.target.wants/siaga-gateway.service").exists()
        assert not (root / "etc/systemd/system/siaga-gateway.service").exists(), "left masked"
        assert run_in_root(root, "siaga-dashboard", "--version").returncode == 0

        run_in_root(root, *APT, "purge", "siaga-server")
        assert not (root / "etc/siaga").exists()
        assert not (root / "var/lib/siaga").exists()
        assert not (root / "opt/siaga").exists()
        # Debian custom: the account stays (files elsewhere may still be its).
        assert run_in_root(root, "getent", "passwd", "siaga").returncode == 0


def test_a_root_is_unmounted_and_deleted_when_its_user_fails(tmp_path: Path) -> None:
    (tmp_path / "tree/proc").mkdir(parents=True)
    tarball = tmp_path / "tiny.tar"
    subprocess.run(["tar", "-C", tmp_path / "tree", "-cf", tarball, "."], check=True)
    with pytest.raises(RuntimeError, match="inside"), bookworm_root(tarball) as root:
        folder = root.parent
        assert mounts_under(folder) == [str(root / "proc"), str(root)]
        raise RuntimeError("a failure inside")
    assert mounts_under(folder) == []
    assert not folder.exists()


# --- from a fresh root to a commissioned gateway: the technician's three commands -------------------------

TECHNICIAN = ("teknisi", "teknisi-password-1")


def _in_root(root: Path, *command: str, **popen: Any) -> subprocess.Popen[str]:
    """A long-running ``command`` inside ``root`` (as :func:`run_in_root`, not waited for)."""
    variables = [f"{name}={value}" for name, value in ROOT_ENV.items()]
    return subprocess.Popen([CHROOT, root, "env", "-i", *variables, *command], text=True, **popen)


def _press(control: str, button: str) -> None:
    request = urllib.request.Request(f"{control}/press/{button}", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=15) as response:
        assert response.status == 200


def test_a_fresh_root_installs_enrols_commissions_and_its_press_reaches_the_board(
    built: Built,
    enrolment_site: Site,  # noqa: F811 (the fixture imported above)
) -> None:
    """`apt install`, `siaga-gateway enrol`, `siaga-gateway commission`: nothing else is typed in the root."""
    site = enrolment_site
    site.dashboard.create_user(*TECHNICIAN, "technician")
    _plan(site, "gw-andoolo", [FIRE])
    code = _issue(site, "gw-andoolo")
    with bookworm_root() as root:
        # 1. install
        apt_install(root, built.gateway)
        # 2. enrol, trusting the dashboard's private CA (the regency's own) by file
        shutil.copy(site.ca_file, root / "root" / "dashboard-ca.pem")
        enrolled = run_in_root(
            root, "siaga-gateway", "enrol", site.url, code, "--ca-file", "/root/dashboard-ca.pem", check=False
        )
        assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
        assert "enrolled gateway gw-andoolo" in enrolled.stdout
        groups = names(root, "group")
        secret = (root / "etc/siaga/mqtt-password").stat()
        assert (groups[secret.st_gid], stat.S_IMODE(secret.st_mode)) == ("siaga", 0o640)  # the service may read it
        assert run_in_root(root, "siaga-gateway", "--check").stdout.startswith("/etc/siaga/gateway.toml: OK")

        # The service, as systemd would start it (a chroot runs no systemd): the installed gateway on mock
        # pins, with the simulator's control API standing in for the technician's finger.
        (root / "run" / "siaga").mkdir(parents=True, exist_ok=True)  # RuntimeDirectory=siaga
        port = free_port()
        log = open(root.parent / "gateway.log", "w")  # closed in finally
        gateway = _in_root(
            root,
            "/opt/siaga/venv/bin/python",  # the package drops siaga-sim's script; its gateway runner is there
            "-m",
            "sim",
            "gateway",
            "--config",
            "/etc/siaga/gateway.toml",
            "--control-port",
            str(port),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            assert wait_for_port("127.0.0.1", port, 30), (root.parent / "gateway.log").read_text()[-3000:]
            control = f"http://127.0.0.1:{port}"
            # 3. commission: it asks for each press; the test presses when asked
            (root / "root" / "password").write_text(TECHNICIAN[1] + "\n")
            (root / "root" / "password").chmod(0o600)
            commission = _in_root(
                root,
                "siaga-gateway",
                "commission",
                "--user",
                TECHNICIAN[0],
                "--password-file",
                "/root/password",
                "--yes",
                "--timeout",
                "30",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert commission.stdout is not None and commission.stderr is not None
            output = []
            for line in commission.stdout:
                output.append(line)
                words = line.split()
                if len(words) >= 3 and words[0] == "press" and words[2] == "now":
                    _press(control, words[1])
            errors = commission.stderr.read()
            assert commission.wait(60) == 0, "".join(output) + errors
            text = "".join(output)
            assert "press andoolo-fire-1 now" in text and "Verdict: PASSED" in text
            report = next(line.split()[1] for line in output if line.startswith("Report:"))
            technician = DashboardClient(site.url)
            technician.login(*TECHNICIAN)
            session = technician.get_json(f"/api/commissioning/sessions/{report.rstrip('/').rsplit('/', 1)[1]}")
            assert (session["state"], session["verdict"]) == ("finished", "passed")
            tests = site.operator.get_json("/api/alarms?state=all")["alarms"]
            assert [(a["button"], a["test"]) for a in tests] == [("andoolo-fire-1", True)]  # never a real alarm

            # Commissioned, back in service: a press is a real alarm on the fire post's board.
            _press(control, "andoolo-fire-1")
            real = poll_until(
                lambda: site.operator.get_json("/api/alarms")["alarms"],
                lambda alarms: any(a["button"] == "andoolo-fire-1" and not a["test"] for a in alarms),
                timeout=15,
                what="the commissioned button's press on the board",
            )
            assert [a["gw"] for a in real] == ["gw-andoolo"]
        finally:
            gateway.terminate()
            try:
                gateway.wait(15)
            except subprocess.TimeoutExpired:
                gateway.kill()
                gateway.wait(5)
            log.close()
