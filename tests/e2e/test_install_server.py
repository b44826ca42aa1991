"""scripts/install-server, run as the bureau's engineer would, into a throwaway root
(INTAKE_ROOT) with a real system user and real file modes; apt-get and systemctl are recorded
instead of run (INTAKE_STUB="apt systemd": no systemd runs in a test container). Then the
installed `intake` command is used as root, as another user, and as the service user."""
import os
import pwd
import re
import shutil
import stat
import subprocess
import sysconfig
import tempfile
from pathlib import Path

import pytest

from tests.configs import MAILBOX, REPO, SMTP_PASSWORD, SMTP_USER, write_config

USER = "intake-test"
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(c) for c in ("adduser", "setpriv", "dpkg-query"))
    or not Path("/usr/bin/python3").exists(),
    reason="installs a system user: needs root on Debian")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def owner(path: Path) -> str:
    return pwd.getpwuid(path.stat().st_uid).pw_name


def exposure(unit: Path) -> float:
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                            capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout + result.stderr)
    assert found, result.stdout + result.stderr
    return float(found.group(1))


@pytest.fixture(scope="module")
def root():
    """The throwaway root, which other users may enter (pytest's tmp_path is root's alone).
    Its venv is made beforehand, as the installer makes it, and sees the test run's packages
    (same Python minor version), so pip installs intake from the clone without fetching its
    dependencies again; the installer keeps a venv that exists."""
    existed = subprocess.run(["getent", "passwd", USER], capture_output=True).returncode == 0
    base = Path(tempfile.mkdtemp(prefix="intake-root-"))
    base.chmod(0o755)
    venv = base / "srv" / "intake" / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    [site] = venv.glob("lib/python3*/site-packages")
    (site / "test-run-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    yield base
    shutil.rmtree(base)
    if not existed:
        subprocess.run(["deluser", "--quiet", "--system", "--remove-home", USER], capture_output=True)
        subprocess.run(["delgroup", "--quiet", "--system", USER], capture_output=True)


def install(root: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([str(REPO / "scripts" / "install-server")], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "INTAKE_ROOT": str(root),
                                              "INTAKE_STUB": "apt systemd", "INTAKE_USER": USER,
                                              # the OCR extra (~100 MB of wheels) is left out
                                              # here; the suite tests it in its own venv
                                              "INTAKE_EXTRAS": ""})
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def installed(root):
    first = install(root)
    return root, first


def test_the_install_lays_out_user_code_store_configuration_and_service(installed):
    root, first = installed
    user = pwd.getpwnam(USER)
    assert user.pw_uid < 1000 and user.pw_dir == "/srv/intake" and user.pw_shell == "/usr/sbin/nologin"

    venv_intake = root / "srv/intake/venv/bin/intake"
    version = subprocess.run([str(venv_intake), "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("intake "), version.stderr
    assert owner(root / "srv/intake/venv/bin/python") == "root", "the service cannot change its code"

    store = root / "srv/intake/var"
    assert (owner(store), mode(store)) == (USER, 0o700)

    config, secrets = root / "etc/intake/intake.toml", root / "etc/intake/secrets.env"
    assert mode(config) == 0o644
    assert 'path = "/srv/intake/var/intake.json"' in config.read_text() and 'files = "/srv/intake/var/files"' in config.read_text()
    assert (owner(secrets), mode(secrets)) == ("root", 0o600)
    assert "INTAKE_IMAP_PASSWORD=\n" in secrets.read_text() and "INTAKE_SMTP_PASSWORD=\n" in secrets.read_text()
    assert "fill them in, then: systemctl start intake" in first.stdout

    unit = root / "etc/systemd/system/intake.service"
    assert mode(unit) == 0o644
    lines = unit.read_text().splitlines()
    for line in (f"User={USER}", "ExecStart=/srv/intake/venv/bin/intake --config /etc/intake/intake.toml run",
                 "EnvironmentFile=/etc/intake/secrets.env", "ProtectSystem=strict",
                 "ReadWritePaths=/srv/intake/var", "NoNewPrivileges=yes", "CapabilityBoundingSet=",
                 "SystemCallFilter=@system-service", "PrivateTmp=yes", "ProtectHome=yes"):
        assert line in lines, line
    calls = (root / "stub-calls").read_text().splitlines()
    assert calls[-2:] == ["systemctl daemon-reload", "systemctl enable --quiet intake"]
    for call in calls:   # packages are installed only when missing, and only these
        if call.startswith("apt-get"):
            assert set(call.split()[4:]) <= {"python3-venv", "libreoffice-writer-nogui",
                                             "libreoffice-calc-nogui", "python3-uno", "fonts-wqy-zenhei",
                                             "libarchive13", "libgl1", "libglib2.0-0"}

    wrapper = root / "usr/local/bin/intake"
    assert mode(wrapper) == 0o755
    assert f"INTAKE_BIN={venv_intake}" in wrapper.read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_installed_unit_is_rated_3_or_better(installed):
    root, _ = installed
    assert exposure(root / "etc/systemd/system/intake.service") <= 3.0


def test_a_second_run_keeps_the_configuration_and_repairs_the_store(installed, smtp_server):
    root, _ = installed
    store = root / "srv/intake/var"
    # The engineer's edits: the counties' mailbox here is the test SMTP server, the store in this root.
    text = write_config(store, smtp={"transport": "smtp", "host": "127.0.0.1", "port": smtp_server.port,
                                     "security": "none", "username": SMTP_USER,
                                     "password_env": "INTAKE_SMTP_PASSWORD", "from_address": MAILBOX}
                        ).read_text()
    (store / "intake.toml").unlink()
    (root / "etc/intake/intake.toml").write_text(text)
    (root / "etc/intake/secrets.env").write_text(
        f"INTAKE_IMAP_PASSWORD=imap-secret\nINTAKE_SMTP_PASSWORD={SMTP_PASSWORD}\n")
    left_by_root = store / "intake.json.lock"
    left_by_root.write_text("")             # the trap of an earlier root run

    second = install(root)
    assert (root / "etc/intake/intake.toml").read_text() == text, "the configuration is kept"
    assert SMTP_PASSWORD in (root / "etc/intake/secrets.env").read_text(), "the passwords are kept"
    assert mode(root / "etc/intake/secrets.env") == 0o600
    assert owner(left_by_root) == USER, "the store is the service user's again"
    assert "systemctl restart intake" in (root / "stub-calls").read_text().splitlines()
    assert "(re)starting the service" in second.stdout

    # The installed `intake`, called by root: it runs as the service user with its passwords.
    wrapper = str(root / "usr/local/bin/intake")
    sent = subprocess.run([wrapper, "digest", "--date", "2022-07-20"], capture_output=True, text=True,
                          timeout=120, cwd="/")
    assert sent.returncode == 0 and sent.stderr == "", sent.stdout + sent.stderr
    [digest] = smtp_server.wait_for(1)
    assert digest.auth_login == SMTP_USER and digest.message["X-Intake-Digest"] == "2022-07-20"
    assert {owner(p) for p in store.iterdir()} == {USER}, "nothing in the store is root's"

    # Another user is told what to do; the service user itself may use it (without the passwords).
    nobody = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", wrapper,
                             "status"], capture_output=True, text=True, cwd="/")
    assert nobody.returncode == 1
    assert nobody.stderr == f"intake: error: run as root (sudo intake …): intake runs as the {USER} user, not as nobody\n"
    itself = subprocess.run(["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups", wrapper,
                             "outbox"], capture_output=True, text=True, cwd="/", env={**os.environ, "COLUMNS": "200"})
    assert itself.returncode == 0, itself.stderr
    assert "每日汇总" in itself.stdout, itself.stdout
