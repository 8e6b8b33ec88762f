"""A throwaway PostgreSQL cluster for tests: Debian's server binaries, `initdb` + `pg_ctl`, no Docker.

initdb refuses to run as root, so as root the cluster belongs to the `postgres` user (`runuser`);
it lives in a fresh temporary directory, listens on 127.0.0.1 on a free port (and a unix socket in
that directory), and is stopped (`pg_ctl stop -m immediate`) and removed even when a test fails.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def pg_bin() -> Path | None:
    """Where initdb and pg_ctl live: Debian keeps them in /usr/lib/postgresql/<major>/bin."""
    found = shutil.which("initdb") or shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    majors = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    return Path(majors[0]) if majors else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One cluster; `dsn(db)` names a database in it, `create_database()` makes a fresh one."""

    def __init__(self) -> None:
        self.bin = pg_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL server binaries not found (initdb, pg_ctl); run scripts/system-deps.sh")
        self.root = Path(tempfile.mkdtemp(prefix="vatt-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0

    def _run(self, *args: str, timeout: float = 120) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def start(self) -> PostgresServer:
        if not self.data.exists():
            if self.as_root:
                shutil.chown(self.root, "postgres", "postgres")
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        # fsync=off: commits still reach the OS before they return, so a killed server (stop -m immediate)
        # loses nothing; only a machine crash could, which a throwaway test cluster does not care about
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60", "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                  "-c max_connections=200", "start")
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def create_database(self) -> str:
        """A fresh, empty database; returns its DSN (tests stay independent of each other)."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def create_schema(self) -> str:
        """A fresh, empty schema in one shared database; returns a DSN whose search_path is that schema
        (cheaper than a database per test: no template copy, no forced drop)."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'vatt_tests'").fetchone():
                conn.execute("CREATE DATABASE vatt_tests")
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn("vatt_tests"), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return f"{self.dsn('vatt_tests')}?options=-csearch_path%3D{name}"

    def drop_schema(self, dsn: str) -> None:
        import psycopg

        name = dsn.rsplit("%3D", 1)[1]
        with psycopg.connect(self.dsn("vatt_tests"), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")

    def drop_database(self, dsn: str) -> None:
        import psycopg

        name = dsn.rsplit("/", 1)[1]
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
