"""A throwaway PostgreSQL cluster of a test's own: initdb into a temporary directory, served on a free
loopback port, restarted or stopped when the test says so, and removed afterwards.

It never touches another cluster: everything lives in its own directory (data, socket, log), and
``pg_ctl`` only ever acts on that data directory. PostgreSQL refuses to run as root, so when the tests
run as root the server's commands run as the ``postgres`` user (``runuser``) on a directory it owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PgCluster", "PgUnavailable", "find_bindir"]

# initdb's superuser, with trust authentication: the cluster listens on 127.0.0.1 only and lives for one test.
SUPERUSER = "postgres"
# As root, the server runs as this system user (Debian's and the official images' name for it).
SERVICE_USER = "postgres"
COMMAND_SECONDS = 60


class PgUnavailable(RuntimeError):
    """PostgreSQL's server programs cannot be run here; the message says why."""


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path))


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL's directory of server programs (initdb, pg_ctl), if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One cluster: :meth:`create` it, then ``start``/``restart``/``stop``, and :meth:`destroy` it."""

    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = port

    @classmethod
    def create(cls, bindir: Path | None = None) -> PgCluster:
        """A new, stopped cluster in a fresh temporary directory. Raises PgUnavailable."""
        bindir = bindir or find_bindir()
        if bindir is None:
            raise PgUnavailable("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(SERVICE_USER)
            except KeyError:
                raise PgUnavailable(
                    f"running as root and there is no {SERVICE_USER!r} user to run PostgreSQL as"
                ) from None
            if shutil.which("runuser") is None:
                raise PgUnavailable("running as root and runuser is missing (PostgreSQL refuses to run as root)")
        # Not under pytest's tmp_path: its parents are private to root, and the server user must reach it.
        root = Path(tempfile.mkdtemp(prefix="openline-pg-"))
        cluster = cls(bindir, root, _free_port())
        try:
            if os.geteuid() == 0:
                shutil.chown(root, SERVICE_USER, SERVICE_USER)
            cluster._run(
                "initdb",
                "-D",
                str(cluster.data),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                # Only the cluster's creation skips fsync; the server itself keeps fsync on.
                "--no-sync",
            )
            with (cluster.data / "postgresql.conf").open("a") as conf:
                conf.write(
                    "\n# openline test cluster\n"
                    "listen_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{root}'\n"
                    "max_connections = 200\n"
                    "fsync = on\n"
                    "synchronous_commit = on\n"
                )
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cluster

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bindir / program), *args]
        return ["runuser", "-u", SERVICE_USER, "--", *command] if os.geteuid() == 0 else command

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(
            self._command(program, *args),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}\n"
                f"server log:\n{self.log_tail()}"
            )

    def _pg_ctl(self, action: str, *args: str) -> None:
        # -o with -p: the port is not in postgresql.conf, so a retry on another port needs no rewrite.
        self._run(
            "pg_ctl",
            action,
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "30",
            "-o",
            f"-p {self.port}",
            *args,
        )

    def start(self, attempts: int = 3) -> None:
        """Start the server and wait until it accepts connections; a port taken meanwhile means another."""
        for attempt in range(attempts):
            try:
                self._pg_ctl("start")
                return
            except RuntimeError:
                if attempt == attempts - 1 or "could not bind" not in self.log_tail():
                    raise
                self.port = _free_port()

    def restart(self, mode: str = "fast") -> None:
        """Stop (``fast``: clients are disconnected, committed data kept) and start again on the same port."""
        self._pg_ctl("restart", "-m", mode)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "30")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        """Stop the server at once if it runs (only this data directory's), then remove everything."""
        try:
            if self.running():
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"
