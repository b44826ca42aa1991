"""A private Dovecot 2.3 IMAP server for tests.

``DovecotServer`` writes its own ``dovecot.conf`` into a fresh temp dir and runs
``dovecot -c CONF -F`` as a child process (own process group).  Nothing of the
system Dovecot (``/etc/dovecot``, ``/run/dovecot``, ports 143/993) is used, so
a system Dovecot started by the Debian package does not conflict.

Layout of the temp dir (``server.root``)::

    dovecot.conf  users.d/<user> (passwd-file per user, {PLAIN})  ca.pem  cert.pem  key.pem
    run/ (base_dir)  state/ (state_dir)  dovecot.log  dovecot.stderr
    home/<user>/Maildir   (mail_location = maildir:~/Maildir)

Listeners: ``port`` is plain IMAP (STARTTLS offered, LOGIN allowed without TLS
because ``disable_plaintext_auth = no``), ``tls_port`` is implicit-TLS IMAPS.
Both are on 127.0.0.1 and stay the same across ``stop()``/``start()``.

Folders: INBOX plus ``Sent`` (\\Sent; another name with ``sent_folder=``), ``Drafts`` (\\Drafts), ``Trash``
(\\Trash), auto-created and subscribed, advertised via SPECIAL-USE.  Hierarchy
separator is ``.`` (Maildir++).  IDLE is available (Dovecot default).

Running as root (what this machine and CI do):
  * Dovecot refuses mail uid 0 ("User ... has invalid UID '0'"), so mailboxes
    belong to ``nobody:nogroup`` (65534); ``home/`` is chowned to it and the temp
    dir is chmod 0755 so that uid can reach it.
  * ``default_internal_user = dovecot`` and ``default_login_user = dovenull``
    (both created by the dovecot-core package).  The auth process runs as
    ``dovecot``, so the passwd-files are owned by that user (mode 0600).
  * ``ssl_dh`` is not needed in 2.3 (no warning); ``ssl_cert``/``ssl_key`` come
    from a trustme CA.
  * SIGTERM makes the master wait ~1-2 s for its children; ``stop()`` sends
    SIGTERM to the whole process group (faster), SIGKILLs it after a few
    seconds, and removes ``run/master.pid`` so a restart never sees
    "Dovecot is already running".
When not root (a developer laptop), everything runs as the current user.

Reading command order from the log (``log_text()``):
``imap_id_log = *`` plus ``log_debug = event=imap_command_finished`` makes the
log look like this (one connection: ID before login, LOGIN, ID, SELECT)::

    2026-11-25 14:37:01 imap-login: Info: ID sent: name=pre, version=0.1: user=<>, rip=127.0.0.1, lip=127.0.0.1, secured, session=<WDmSwhphstZ/AAAB>
    2026-11-25 14:37:01 imap-login: Info: Login: user=<alice>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, mpid=6218, secured, session=<WDmSwhphstZ/AAAB>
    2026-11-25 14:37:01 imap(alice)<6218><WDmSwhphstZ/AAAB>: Info: ID sent: name=intake, version=0.1
    2026-11-25 14:37:01 imap(alice)<6218><WDmSwhphstZ/AAAB>: Debug: Command finished: ID ("name" "intake" "version" "0.1")
    2026-11-25 14:37:01 imap(alice)<6218><WDmSwhphstZ/AAAB>: Debug: Command finished: SELECT "INBOX"
    2026-11-25 14:37:01 imap(alice)<6218><WDmSwhphstZ/AAAB>: Debug: Command finished: LOGOUT

* ``imap-login:`` lines are pre-login (ID sent before LOGIN is logged there
  with ``user=<>``); ``imap(<user>)`` lines come from the post-login process,
  so an ``imap(<user>)... ID sent:`` line by itself proves ID came after LOGIN.
* LOGIN/AUTHENTICATE is never a "Command finished" line (it is handled by
  imap-login); its success is the ``Login: user=<...>`` line.
* The ``session=<...>`` id ties the lines of one connection together.
  ``imap_sessions(user)`` does that parsing and returns e.g.
  ``[["ID", "LOGIN", "ID", "SELECT", "LOGOUT"]]``.  It always places LOGIN
  after the pre-login lines and before the post-login ones, because the
  imap-login and imap processes write to the log through different pipes and
  their lines may interleave slightly out of order.
* Log lines are written asynchronously by Dovecot's log process: use
  ``wait_for_log()`` / ``wait_for_imap_command()`` rather than reading the log
  right after a command returns.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterable

HOST = "127.0.0.1"

SETUP_HINT = (
    "Dovecot is required by the integration tests. Run the test suite with "
    "scripts/test, which installs the system packages (dovecot-imapd) and the venv."
)

_counter = itertools.count(1)

#: Folders every user has (auto = subscribe in the config), with SPECIAL-USE flags.
AUTO_FOLDERS = ("INBOX", "Sent", "Drafts", "Trash")


class DovecotError(RuntimeError):
    """Dovecot failed to start, stop or run a doveadm command."""


class DovecotNotInstalled(DovecotError):
    """The dovecot binaries are missing; run scripts/test."""


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def _ids(name: str) -> tuple[int, int]:
    pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


_LOGIN_RE = re.compile(r"imap-login: Info: Login: user=<(?P<user>[^>]*)>.*?session=<(?P<sess>[^>]+)>")
_PRELOGIN_ID_RE = re.compile(r"imap-login: Info: ID sent: .*session=<(?P<sess>[^>]+)>")
_CMD_RE = re.compile(
    r"imap\((?P<user>[^)]*)\)<\d+><(?P<sess>[^>]*)>: Debug: Command finished: (?P<cmd>(?:UID )?\S+)",
    re.IGNORECASE,
)


class DovecotServer:
    """A throwaway Dovecot with passwd-file users and Maildir storage.

    Use as a context manager or call ``start()`` and ``close()``.
    """

    host = HOST

    def __init__(
        self,
        *,
        port: int | None = None,
        tls_port: int | None = None,
        startup_timeout: float = 15.0,
        sent_folder: str = "Sent",
    ) -> None:
        self.dovecot_bin = _find_binary("dovecot")
        self.doveadm_bin = _find_binary("doveadm")
        if not self.dovecot_bin or not self.doveadm_bin:
            raise DovecotNotInstalled(
                f"dovecot/doveadm binaries not found (PATH={os.environ.get('PATH')}). {SETUP_HINT}"
            )
        self.startup_timeout = startup_timeout
        self.sent_folder = sent_folder  # 163 calls it 已发送 (&XfJT0ZAB- on the wire)
        self.port = port or free_port()
        self.tls_port = tls_port or free_port()
        while self.tls_port == self.port:
            self.tls_port = free_port()
        self._proc: subprocess.Popen | None = None
        self._users: dict[str, str] = {}

        base = tempfile.gettempdir()
        if len(base) > 40:  # unix socket paths in base_dir must stay < 108 chars
            base = "/tmp"
        self.root = Path(tempfile.mkdtemp(prefix="intake-dovecot-", dir=base))
        os.chmod(self.root, 0o755)  # the mail uid must be able to reach home/
        self.base_dir = self.root / "run"
        self.state_dir = self.root / "state"
        self.home_root = self.root / "home"
        self.log_path = self.root / "dovecot.log"
        self.stderr_path = self.root / "dovecot.stderr"
        self.config_path = self.root / "dovecot.conf"
        self.users_dir = self.root / "users.d"
        self.ca_file = str(self.root / "ca.pem")
        for d in (self.base_dir, self.state_dir, self.home_root):
            d.mkdir()

        if os.geteuid() == 0:
            self.internal_user = "dovecot"
            self.login_user = "dovenull"
            try:
                self.mail_uid, self.mail_gid = _ids("nobody")
            except KeyError:
                self.mail_uid, self.mail_gid = 65534, 65534
            try:
                internal_uid, internal_gid = _ids(self.internal_user)
                _ids(self.login_user)
            except KeyError as exc:
                raise DovecotNotInstalled(
                    f"system user {exc} missing (created by the dovecot-core package). {SETUP_HINT}"
                ) from None
        else:
            me = pwd.getpwuid(os.getuid()).pw_name
            self.internal_user = self.login_user = me
            self.mail_uid, self.mail_gid = os.getuid(), os.getgid()
            internal_uid, internal_gid = self.mail_uid, self.mail_gid

        self._write_certs()
        self.users_dir.mkdir(mode=0o700)
        self._users_owner = (internal_uid, internal_gid)
        if os.geteuid() == 0:
            os.chown(self.users_dir, internal_uid, internal_gid)
            os.chown(self.home_root, self.mail_uid, self.mail_gid)
        self.config_path.write_text(self._config())
        self._closed = False
        atexit.register(self.close)

    # ------------------------------------------------------------------ setup
    def _write_certs(self) -> None:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("localhost", "127.0.0.1")
        ca.cert_pem.write_to_path(self.ca_file)
        cert_path = self.root / "cert.pem"
        key_path = self.root / "key.pem"
        cert_path.write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
        key_path.write_bytes(cert.private_key_pem.bytes())
        os.chmod(key_path, 0o600)

    def _config(self) -> str:
        r = self.root
        return f"""\
# Generated by tests/servers/dovecot.py -- private test instance.
instance_name = intake-test-{r.name}
base_dir = {self.base_dir}
state_dir = {self.state_dir}
log_path = {self.log_path}
info_log_path = {self.log_path}
debug_log_path = {self.log_path}
log_timestamp = "%Y-%m-%d %H:%M:%S "
protocols = imap
listen = {HOST}
shutdown_clients = yes

default_internal_user = {self.internal_user}
default_login_user = {self.login_user}
first_valid_uid = {self.mail_uid}
last_valid_uid = 0
first_valid_gid = {self.mail_gid}
last_valid_gid = 0

ssl = yes
ssl_cert = <{r / "cert.pem"}
ssl_key = <{r / "key.pem"}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %u
auth_failure_delay = 0
auth_verbose = yes
mail_max_userip_connections = 100

# ID command arguments are logged ("ID sent: ..."), and every finished
# post-login command is logged as "Debug: Command finished: NAME args".
imap_id_log = *
log_debug = event=imap_command_finished

mail_location = maildir:~/Maildir
# One passwd-file per user: Dovecot stats a passwd-file for changes at most
# once per second, so users appended to a single shared file right after a
# lookup were intermittently "unknown user".  A new file is always read.
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.users_dir}/%u
}}
userdb {{
  driver = passwd-file
  args = {self.users_dir}/%u
}}

namespace inbox {{
  inbox = yes
  separator = .
  mailbox "{self.sent_folder}" {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
}}

# No anvil auth penalty: after one failed login (a wrong-password test) every
# later login from 127.0.0.1 would otherwise be delayed 2..15 s.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {self.tls_port}
    ssl = yes
  }}
}}
"""

    # -------------------------------------------------------------- lifecycle
    def start(self) -> "DovecotServer":
        if self._closed:
            raise DovecotError("this DovecotServer was closed")
        if self.is_running():
            return self
        (self.base_dir / "master.pid").unlink(missing_ok=True)
        with open(self.stderr_path, "ab") as err:
            self._proc = subprocess.Popen(
                [self.dovecot_bin, "-c", str(self.config_path), "-F"],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise DovecotError(
                    f"dovecot exited with code {self._proc.returncode} during startup.\n"
                    + self._diagnostics()
                )
            try:
                self._check_greeting()
                with socket.create_connection((HOST, self.tls_port), timeout=2):
                    pass
                return self
            except OSError as exc:
                last_error = exc
                time.sleep(0.05)
        self.stop()
        raise DovecotError(
            f"dovecot did not answer '* OK' on {HOST}:{self.port} within "
            f"{self.startup_timeout}s (last error: {last_error!r}).\n" + self._diagnostics()
        )

    def _check_greeting(self) -> None:
        with socket.create_connection((HOST, self.port), timeout=2) as s:
            s.settimeout(2)
            data = b""
            while b"\n" not in data:
                chunk = s.recv(1024)
                if not chunk:
                    break
                data += chunk
            if not data.startswith(b"* OK"):
                raise ConnectionError(f"unexpected greeting {data!r}")
            s.sendall(b"a LOGOUT\r\n")

    def _diagnostics(self) -> str:
        def tail(p: Path) -> str:
            try:
                return "\n".join(p.read_text(errors="replace").splitlines()[-30:])
            except OSError:
                return "(missing)"

        return (
            f"config: {self.config_path}\n--- stderr ---\n{tail(self.stderr_path)}\n"
            f"--- log ---\n{tail(self.log_path)}"
        )

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Children (log, auth, imap ...) share the process group; make sure
        # none survives and keeps a port or the log file open.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if proc.poll() is None:
            proc.wait(timeout)
        (self.base_dir / "master.pid").unlink(missing_ok=True)

    def restart(self) -> "DovecotServer":
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and delete its temp dir."""
        if self._closed:
            return
        self.stop()
        self._closed = True
        shutil.rmtree(self.root, ignore_errors=True)
        try:
            atexit.unregister(self.close)
        except Exception:
            pass

    def __enter__(self) -> "DovecotServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ users
    def add_user(self, username: str | None = None, password: str = "secret") -> tuple[str, str]:
        """Create a user (a unique one when ``username`` is None); works while running.

        Usernames are matched exactly (no lowercasing); they may not contain
        ``/``, ``:``, ``%`` or whitespace, nor start with ``.``.
        """
        if username is None:
            username = f"user{next(_counter):03d}-{secrets.token_hex(3)}@intake.test"
        if not username or username.startswith(".") or re.search(r"[/:%\s]", username):
            raise ValueError(f"unsupported username {username!r}")
        if not password or re.search(r"[:\r\n]", password):
            raise ValueError(f"unsupported password {password!r}")
        if username in self._users:
            raise ValueError(f"user {username!r} already exists")
        home = self.home_dir(username)
        line = f"{username}:{{PLAIN}}{password}:{self.mail_uid}:{self.mail_gid}::{home}::\n"
        tmp = self.users_dir / f".tmp-{secrets.token_hex(4)}"
        tmp.write_text(line)
        os.chmod(tmp, 0o600)
        if os.geteuid() == 0:
            os.chown(tmp, *self._users_owner)
        os.replace(tmp, self.users_dir / username)
        self._users[username] = password
        return username, password

    def home_dir(self, username: str) -> Path:
        return self.home_root / username

    def maildir(self, username: str) -> Path:
        return self.home_dir(username) / "Maildir"

    # ----------------------------------------------------------------- client
    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's CA (and only it)."""
        return ssl.create_default_context(cafile=self.ca_file)

    def client(self, username: str, password: str | None = None, *, tls: bool = False, timeout: float = 10):
        """An ``IMAPClient`` logged in as ``username`` (plain port; ``tls=True``: IMAPS)."""
        from imapclient import IMAPClient

        if password is None:
            password = self._users[username]
        if tls:
            c = IMAPClient(HOST, self.tls_port, ssl=True, ssl_context=self.ssl_context(), timeout=timeout)
        else:
            c = IMAPClient(HOST, self.port, ssl=False, timeout=timeout)
        try:
            c.login(username, password)
        except Exception:
            c.shutdown()
            raise
        return c

    def append(
        self,
        username: str,
        password: str | None,
        raw: bytes,
        folder: str = "INBOX",
        internaldate: _dt.datetime | None = None,
        flags: Iterable[str | bytes] = (),
    ) -> int:
        """APPEND ``raw`` to ``folder`` and return its UID (from APPENDUID).

        A naive ``internaldate`` is taken as local time (imapclient's rule);
        pass an aware datetime to be exact.
        """
        c = self.client(username, password)
        try:
            resp = c.append(folder, raw, flags=tuple(flags), msg_time=internaldate)
        finally:
            try:
                c.logout()
            except Exception:
                c.shutdown()
        text = resp.decode(errors="replace") if isinstance(resp, bytes) else str(resp)
        m = re.search(r"APPENDUID \d+ (\d+)", text)
        if not m:
            raise DovecotError(f"no APPENDUID in APPEND response {text!r}")
        return int(m.group(1))

    # ---------------------------------------------------------------- doveadm
    def doveadm(self, *args: str, check: bool = True) -> str:
        """Run ``doveadm -c CONF ARGS`` against this instance; returns stdout."""
        proc = subprocess.run(
            [self.doveadm_bin, "-c", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check and proc.returncode != 0:
            raise DovecotError(
                f"doveadm {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc.stdout

    def uidvalidities(self, username: str, folders: Iterable[str] | None = None) -> dict[str, int]:
        """UIDVALIDITY per folder of ``username``.

        Without ``folders``: every folder that exists on disk (auto-created
        folders such as Sent only exist once something opened them).  With
        ``folders``: exactly those, creating INBOX/Sent/Drafts/Trash if needed.
        """
        if folders is None:
            outs = [self.doveadm("mailbox", "status", "-u", username, "uidvalidity", "*")]
        else:
            outs = [self.doveadm("mailbox", "status", "-u", username, "uidvalidity", f) for f in folders]
        result = {}
        for line in "".join(outs).splitlines():
            name, _, rest = line.rpartition(" uidvalidity=")
            if name:
                result[name] = int(rest)
        return result

    def rebuild_mailbox(self, username: str, uidvalidity: int | None = None) -> int:
        """Wipe ``username``'s Maildir and recreate it empty with new UIDVALIDITYs.

        All messages and user-created folders are gone; INBOX, Sent, Drafts and
        Trash are recreated empty, UIDs restart at 1 and each folder's
        UIDVALIDITY differs from its old one (INBOX gets ``uidvalidity`` when
        given).  Returns INBOX's new UIDVALIDITY.

        How: ``rm -rf home/<user>/Maildir`` (Dovecot recreates it on next access
        with UIDVALIDITY = current time, which may equal the old value within
        the same second), then ``doveadm mailbox status`` to recreate the folders
        and ``doveadm mailbox update --uid-validity`` to force a different value.
        Needs the server running.  Log out that user's sessions first: an open
        session sees its files vanish and Dovecot may disconnect it.
        """
        if not self.is_running():
            raise DovecotError("rebuild_mailbox needs the server running (doveadm asks its auth)")
        old = self.uidvalidities(username)
        shutil.rmtree(self.maildir(username), ignore_errors=True)
        new = self.uidvalidities(username, AUTO_FOLDERS)
        for folder, value in new.items():
            target = None
            if folder == "INBOX" and uidvalidity is not None:
                target = uidvalidity
            elif folder in old and value <= old[folder]:
                target = old[folder] + 1
            if target is not None and target != value:
                self.doveadm("mailbox", "update", "-u", username, "--uid-validity", str(target), folder)
        return self.uidvalidities(username, ["INBOX"])["INBOX"]

    # -------------------------------------------------------------------- log
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern: str | re.Pattern, timeout: float = 5.0) -> re.Match:
        """Wait until a log line matches ``pattern`` (regex); return the match."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_text().splitlines():
                m = rx.search(line)
                if m:
                    return m
            if time.monotonic() >= deadline:
                tail = "\n".join(self.log_text().splitlines()[-20:])
                raise AssertionError(f"no log line matching {rx.pattern!r} within {timeout}s; log tail:\n{tail}")
            time.sleep(0.05)

    def imap_sessions(self, username: str) -> list[list[str]]:
        """Per connection (in login order) of ``username``, the IMAP commands seen.

        Pre-login ``ID`` (from imap-login), then ``LOGIN`` (successful
        LOGIN/AUTHENTICATE), then every post-login command name in order
        (upper-case; UID commands as "UID FETCH" etc.), e.g.
        ``[["LOGIN", "ID", "SELECT", "UID FETCH", "LOGOUT"]]``.  Other pre-login commands
        (CAPABILITY, STARTTLS) are not logged by Dovecot.
        """
        lines = self.log_text().splitlines()
        prelogin: dict[str, list[str]] = {}
        order: list[str] = []
        post: dict[str, list[str]] = {}
        for line in lines:
            m = _LOGIN_RE.search(line)
            if m:
                if m["user"] == username and m["sess"] not in order:
                    order.append(m["sess"])
                continue
            m = _PRELOGIN_ID_RE.search(line)
            if m:
                prelogin.setdefault(m["sess"], []).append("ID")
                continue
            m = _CMD_RE.search(line)
            if m and m["user"] == username:
                if m["sess"] not in order:  # login line not flushed yet
                    order.append(m["sess"])
                post.setdefault(m["sess"], []).append(m["cmd"].upper())
        return [prelogin.get(s, []) + ["LOGIN"] + post.get(s, []) for s in order]

    def wait_for_imap_command(self, username: str, command: str, timeout: float = 5.0) -> list[list[str]]:
        """Wait until ``command`` (e.g. "LOGOUT") shows up for ``username``; return imap_sessions()."""
        command = command.upper()
        deadline = time.monotonic() + timeout
        while True:
            sessions = self.imap_sessions(username)
            if any(command in s for s in sessions):
                return sessions
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{command} for {username} not in the Dovecot log within {timeout}s: {sessions}"
                )
            time.sleep(0.05)

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<DovecotServer {HOST}:{self.port} tls:{self.tls_port} {state} root={self.root}>"
