"""Every mistake an operator can make ends as one line naming the file or key, labelled `error`,
with exit code 1 — never a traceback. The permission cases run intake as another user (nobody)
with setpriv, as the bureau's server runs it as `intake` beside an administrator."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.cli import INTAKE, intake
from tests.configs import MAIL_RECEIVED, MAILBOX, write_config


def one_error_line(result) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("intake: error: "), line
    return line


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path)


@pytest.fixture
def stored(config):
    """A store that has recorded one email (an out-of-office reply)."""
    from pipeline.demo import write_maildir
    from pipeline.sample_mail import auto_reply

    write_maildir(config.parent / "inbox", [(auto_reply("hetang@example.cn", MAILBOX), MAIL_RECEIVED)])
    assert intake(config, "poll", "--once").returncode == 0
    return config


@pytest.mark.parametrize("target, says", [
    ("/nonexistent/dir/roster.csv", "cannot write /nonexistent/dir/roster.csv: No such file or directory"),
    ("/etc/hostname/roster.csv", "cannot write /etc/hostname/roster.csv: Not a directory"),
])
def test_an_export_to_a_folder_that_cannot_be_written_is_one_line(stored, target, says):
    line = one_error_line(intake(stored, "export", "--format", "csv", "-o", target))
    assert line == f"intake: error: {says}"


def test_a_misspelt_key_is_one_line_with_the_suggestion(tmp_path):
    config = write_config(tmp_path, replace={"deeds_max_chars = 600": "deeds-max-chars = 600"})
    line = one_error_line(intake(config, "status"))
    assert line == (f"intake: error: {config}: campaign.deeds-max-chars is not a known key; "
                    f"did you mean deeds_max_chars?")


def test_a_sender_under_two_counties_is_one_line(tmp_path):
    config = write_config(tmp_path, replace={'senders = ["lukou@example.cn"]':
                                             'senders = ["lukou@example.cn", "hetang@example.cn"]'})
    line = one_error_line(intake(config, "status"))
    assert "the sender hetang@example.cn is listed under both 荷塘区 and 渌口区" in line


def test_a_demo_folder_with_someone_elses_files_is_left_alone(config, tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "推荐名单.xlsx").write_bytes(b"the contact's own work")
    line = one_error_line(intake(config, "demo", "--dir", str(folder)))
    assert "is not empty and was not made by intake demo" in line
    assert (folder / "推荐名单.xlsx").read_bytes() == b"the contact's own work"


def test_the_version_comes_from_the_package():
    from importlib.metadata import version

    result = subprocess.run([str(INTAKE), "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == f"intake {version('intake')}\n"


# --- the store belongs to one user -------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                                reason="runs intake as nobody: needs root and setpriv")


@pytest.fixture
def shared():
    """A folder other users may enter (pytest's tmp_path is root's alone), with a config whose
    store lives in `var/` beside it, as on the server."""
    base = Path(tempfile.mkdtemp(prefix="intake-users-"))
    base.chmod(0o755)
    config = write_config(base)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(f'path = "{base}/intake.json"', 'path = "var/intake.json"')
                          .replace(f'files = "{base}/files"', 'files = "var/files"'), encoding="utf-8")
    config.chmod(0o644)
    yield base, config
    shutil.rmtree(base)


def as_nobody(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           str(INTAKE), "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120, cwd="/")


@needs_root
def test_root_may_not_write_a_store_that_belongs_to_the_service_user(shared):
    # The trap door of the issue: root runs one command, leaves root-owned files, and the service
    # (running as its own user) dies on every start from then on.
    base, config = shared
    (base / "var").mkdir(mode=0o700)
    os.chown(base / "var", 65534, 65534)
    line = one_error_line(intake(config, "mark", "张三", "--county", "荷塘区", "--status", "pooled"))
    assert line == (f"intake: error: the store {base}/var belongs to the nobody user: run as the "
                    f"nobody user: runuser -u nobody -- intake … (or sudo -u nobody intake …)")
    assert os.listdir(base / "var") == [], "root left nothing behind"


@needs_root
def test_a_lock_left_by_root_tells_the_service_user_how_to_take_it_back(shared):
    base, config = shared
    (base / "var").mkdir(mode=0o700)
    os.chown(base / "var", 65534, 65534)
    lock = base / "var" / "intake.json.lock"
    lock.write_text("")
    lock.chmod(0o600)                      # root's, from an older intake run as root
    line = one_error_line(as_nobody(config, "outbox", "--retry"))
    assert line == (f"intake: error: cannot open {lock}: it belongs to root, not to nobody, who owns "
                    f"the store: give it back: chown -R nobody: {base}/var")


@needs_root
def test_another_user_is_told_to_run_as_the_stores_owner(shared):
    base, config = shared
    (base / "var").mkdir(mode=0o700)       # root's store; nobody cannot even look inside
    line = one_error_line(as_nobody(config, "status"))
    assert "permission denied to nobody; the store belongs to the root user: run as the root user: " \
           "sudo -u root intake …" in line
    assert str(base / "var") in line
