"""A throw-away PostgreSQL cluster for the tests: ``initdb`` and ``pg_ctl`` in a temp
folder, listening on 127.0.0.1 only, on a free port; no system service.

initdb refuses to run as root, so as root the cluster belongs to the ``postgres`` user
(``runuser``). Host connections need a password (scram-sha-256), so the tests of wrong
credentials meet a real refusal.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER = "mlops"
PASSWORD = "s3cret-pw-test"


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl: Debian's /usr/lib/postgresql/<v>/bin, else PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def password_of(uri: str) -> str:
    """The password in a server URI: ours, or the one ``MLOPS_TEST_POSTGRES_URI`` (CI) carries."""
    from sqlalchemy.engine import make_url

    return str(make_url(uri).password)


def with_password(uri: str, password: str) -> str:
    """The same server URI with another password."""
    from sqlalchemy.engine import make_url

    return make_url(uri).set(password=password).render_as_string(hide_password=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One PostgreSQL cluster in its own temp folder.

    Args:
        bin_dir: The folder of initdb, pg_ctl and postgres.
    """

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.owner = "postgres" if os.geteuid() == 0 else None
        if self.owner:
            shutil.chown(self.root, self.owner)

    @property
    def uri(self) -> str:
        """The superuser's URI of the ``postgres`` database (with the password)."""
        return f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.owner:
            command = ["runuser", "-u", self.owner, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, cwd=self.root, timeout=120)

    def init(self) -> None:
        password_file = self.root / "pw"
        password_file.write_text(PASSWORD + "\n")
        if self.owner:
            shutil.chown(password_file, self.owner)
        self._run("initdb", "-D", str(self.data), "-U", USER, f"--pwfile={password_file}", "-E", "UTF8",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync")
        password_file.unlink()

    def start(self) -> None:
        # fsync off: a test cluster is thrown away, and a crash loses nothing that matters.
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "-t", "60",
                  "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        """Stop (closing every connection) and start again; not ``pg_ctl restart``, whose
        server would keep this process's output pipe open without ``-l``."""
        self.stop("fast")
        self.start()

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def cluster() -> Iterator[Cluster | None]:
    """A started cluster, stopped and removed at the end; None when PostgreSQL is not installed."""
    bin_dir = binaries()
    if bin_dir is None:
        yield None
        return
    made = Cluster(bin_dir)
    try:
        made.init()
        made.start()
        yield made
    finally:
        made.remove()


def create_database(admin_uri: str) -> str:
    """A new empty database on the server of ``admin_uri``; returns its URI."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(admin_uri), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_uri.rsplit("/", 1)[0] + f"/{name}"


def drop_database(admin_uri: str, uri: str) -> None:
    import psycopg

    name = uri.rsplit("/", 1)[1]
    with psycopg.connect(_libpq(admin_uri), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _libpq(uri: str) -> str:
    """A SQLAlchemy URI as libpq takes it (no ``+psycopg``)."""
    return uri.replace("postgresql+psycopg://", "postgresql://", 1)
