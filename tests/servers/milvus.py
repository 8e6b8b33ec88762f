"""A throwaway Milvus standalone server (the `milvus` wheel's `milvus-server`) for the tests.

Every listening port is chosen free up front and passed on the command line (the wheel's defaults
19530, 2379, ... would collide with a second server or a developer's own), the data directory is
a temporary one, and the whole process group is killed on stop: `milvus-server` is a Python
launcher whose child `milvus run standalone` embeds etcd and rocksmq, and must not outlive the tests.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

log = logging.getLogger(__name__)

# the templated ports of milvus 2.3's config (`milvus-server --help`), plus the embedded etcd's peer port,
# which only an etcd config file sets (named by $ETCD_CONFIG_PATH, as in Milvus's own standalone_embed.sh;
# without one, etcd takes 2379/2380 whatever --etcd-port says); the metrics/health port is found by the
# launcher itself (first free one from 9091)
_PORT_FLAGS = ("proxy-port", "proxy-internal-port", "etcd-port", "root-coord-port", "query-coord-port",
               "query-node-port", "index-coord-port", "index-node-port", "data-coord-port", "data-node-port")
_ETCD_CONFIG = """name: default
listen-client-urls: http://127.0.0.1:{client}
advertise-client-urls: http://127.0.0.1:{client}
listen-peer-urls: http://127.0.0.1:{peer}
initial-advertise-peer-urls: http://127.0.0.1:{peer}
initial-cluster: default=http://127.0.0.1:{peer}
"""

# A SIGTERM'ed Milvus otherwise waits up to 30 min (gracefulStopTimeout) for its query node to hand its
# segments to another node, which a standalone server has not.
_EXTRA = ("--extra-config", "common.gracefulStopTimeout=5")


def free_ports(n: int) -> list[int]:
    """n distinct TCP ports nobody listens on right now (all bound at once, so they differ)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def milvus_executable() -> str | None:
    """`milvus-server` beside this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).with_name("milvus-server")
    return str(beside) if beside.exists() else shutil.which("milvus-server")


class MilvusServer:
    """One standalone Milvus in `root`; `stop()` then `start()` restarts it on the same ports and data."""

    def __init__(self, root: Path, *, tick_ms: int = 20) -> None:
        """`tick_ms`: proxy.timeTickInterval. A Strong search waits for the next tick (Milvus's default 200 ms
        cost ~210 ms per search here); 20 ms keeps the catalogue suite's hundreds of searches fast."""
        self.root, self.tick_ms = root, tick_ms
        *ports, self.etcd_peer_port = free_ports(len(_PORT_FLAGS) + 1)
        self.ports = dict(zip(_PORT_FLAGS, ports))
        self.proc: subprocess.Popen | None = None
        self.started_in = 0.0  # seconds the last start took

    @property
    def port(self) -> int:
        return self.ports["proxy-port"]

    @property
    def uri(self) -> str:
        """What VATT_VECTORS takes."""
        return f"milvus://127.0.0.1:{self.port}"

    def start(self, timeout: float = 240.0) -> MilvusServer:
        exe = milvus_executable()
        if exe is None:
            raise RuntimeError("milvus-server not found: `pip install -e .[dev]` installs the milvus wheel")
        etcd_config = self.root / "etcd.yaml"
        etcd_config.write_text(_ETCD_CONFIG.format(client=self.ports["etcd-port"], peer=self.etcd_peer_port))
        args = [exe, "--data", str(self.root / "data"), *_EXTRA,
                "--extra-config", f"proxy.timeTickInterval={self.tick_ms}"]
        for flag, port in self.ports.items():
            args += [f"--{flag}", str(port)]
        t0 = time.monotonic()
        with open(self.root / "launcher.log", "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, "ETCD_CONFIG_PATH": str(etcd_config)})
        try:
            self._wait_ready(t0 + timeout)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - t0
        log.info("milvus on port %d started in %.1f s", self.port, self.started_in)
        return self

    def _wait_ready(self, deadline: float) -> None:
        from index.milvus import load_pymilvus

        pm = load_pymilvus()
        connections, utility = pm.connections, pm.utility

        alias = f"probe-{self.port}"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"milvus-server exited with {self.proc.returncode}; see {self.root}/launcher.log "
                                   f"and {self.root}/data/logs")
            try:
                connections.connect(alias, host="127.0.0.1", port=str(self.port), timeout=2)
                utility.list_collections(using=alias, timeout=5)
                return
            except Exception as exc:  # any failure means "not yet"
                if time.monotonic() > deadline:
                    raise TimeoutError(f"milvus did not answer on port {self.port}; see {self.root}/launcher.log") from exc
                time.sleep(0.5)
            finally:
                connections.disconnect(alias)

    def pause(self) -> None:
        """SIGSTOP the server: it accepts connections but answers nothing, as a hung or partitioned engine.
        (Keep it short: past the 30 s session ttl Milvus's components would expire each other. For a crash
        and restart see `kill()` and tests/index/test_milvus_restart.py.)"""
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the whole server at once, as a crash (no graceful stop; `start()` then restarts it on the same
        data: its old sessions linger in etcd until their 30 s TTL ends)."""
        if self.proc is None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and _group_alive(self.proc.pid):
            self.proc.poll()
            time.sleep(0.1)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM the launcher's process group, SIGKILL what is left after 5 s (data need not survive)."""
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _group_alive(self.proc.pid):
                self.proc.poll()
                time.sleep(0.1)
            if not _group_alive(self.proc.pid):
                break
        self.proc.wait(timeout=10)
        self.proc = None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def running_milvus(**options: Any) -> Iterator[MilvusServer]:
    """A started Milvus (MilvusServer's options) in a temporary directory, stopped and removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="vatt-milvus-"))
    server = MilvusServer(root, **options)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def milvus_server() -> Iterator[MilvusServer]:
    """A real Milvus for the whole session (≈30 s to start)."""
    yield from running_milvus()
