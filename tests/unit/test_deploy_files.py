"""The deploy files (Dockerfile, compose, nginx, Kubernetes) only run real commands, probe real routes and set real settings."""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import io
import re
import shlex
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
import typer
import yaml

from service.settings import Settings, SettingsError, env_name

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
# Each role and the `parley` command that plays it.
ROLES = {"api": "serve", "projector": "project", "deliver": "deliver", "migrate": "migrate"}
HTTP_COMMANDS = {"serve"}


# --- what the code offers ---------------------------------------------------------------------


@functools.cache
def parley_cli() -> Any:
    """The `parley` click group as `main()` builds it, with every command it registers."""
    from service import cli

    argv = sys.argv
    sys.argv = ["parley", "--help"]
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            cli.main()
    finally:
        sys.argv = argv
    return typer.main.get_command(cli.cli)


def command_problem(argv: Sequence[str]) -> str | None:
    """Why `argv` is not a `parley` command line that parses (None when it is)."""
    if not argv or argv[0] != "parley":
        return f"{list(argv)} does not run parley"
    command, args, path = parley_cli(), list(argv[1:]), ["parley"]
    while hasattr(command, "commands") and args and not args[0].startswith("-"):
        if args[0] not in command.commands:
            return f"{' '.join(path)} has no command {args[0]!r}"
        path.append(args[0])
        command = command.commands[args.pop(0)]
    if hasattr(command, "commands"):
        return f"{' '.join(path)} is a group, not a command"
    try:
        command.make_context(" ".join(path), args)
    except Exception as error:  # noqa: BLE001 - the vendored click's usage errors have no public base class
        return f"{' '.join(argv)}: {error}"
    return None


def subcommand(argv: Sequence[str]) -> str:
    return next(word for word in argv[1:] if not word.startswith("-"))


@functools.cache
def served_routes() -> frozenset[str]:
    from service.app import create_app

    app = create_app(Settings(database_url=str(ROOT / "var" / "never-opened.db")))
    return frozenset(route.path for route in app.routes if "GET" in getattr(route, "methods", ()))


def settings_variables() -> set[str]:
    return {env_name(field.name) for field in msgspec.structs.fields(Settings)}


def env_example_variables() -> set[str]:
    return set(re.findall(r"^#?\s*(PARLEY_[A-Z0-9_]+)=", (DEPLOY / "env.example").read_text(), re.MULTILINE))


# --- reading the files ------------------------------------------------------------------------


def interpolated(value: Any) -> str:
    """A compose value with `${NAME:-default}` / `${NAME:?error}` replaced as compose would (a stand-in for required ones)."""
    return re.sub(r"\$\{([A-Za-z0-9_]+)(?::?([-?])([^}]*))?\}", lambda m: m.group(3) if m.group(2) == "-" else "given", str(value))


@functools.cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def compose_services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def compose_env(service: Mapping[str, Any]) -> dict[str, str]:
    return {name: interpolated(value) for name, value in (service.get("environment") or {}).items()}


def compose_parley_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose_services().items() if (s.get("command") or [None])[0] == "parley"}


@functools.cache
def manifests() -> tuple[tuple[str, dict[str, Any]], ...]:
    """(file name, document) for every Kubernetes object under deploy/k8s."""
    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name != "kustomization.yaml":
            found += [(str(path.relative_to(K8S)), document) for document in yaml.safe_load_all(path.read_text()) if document]
    return tuple(found)


def kustomized_files(directory: Path) -> set[str]:
    """The manifest files (relative to deploy/k8s) that `kubectl apply -k directory` applies."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    files: set[str] = set()
    for resource in kustomization["resources"]:
        target = (directory / resource).resolve()
        files |= kustomized_files(target) if target.is_dir() else {str(target.relative_to(K8S))}
    return files


def kustomized_images(directory: Path) -> list[dict[str, str]]:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())["images"]


def objects(kind: str) -> list[dict[str, Any]]:
    return [document for _, document in manifests() if document["kind"] == kind]


def workloads() -> list[dict[str, Any]]:
    return objects("Deployment") + objects("Job")


def containers(workload: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def container_argv(container: Mapping[str, Any]) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    """What the container's process sees: the ConfigMaps and Secrets it takes whole, then its own env."""
    config_maps = {c["metadata"]["name"]: c.get("data", {}) for c in objects("ConfigMap")}
    secrets = {s["metadata"]["name"]: s.get("stringData", {}) for s in objects("Secret")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]])
        if "secretRef" in source:
            env.update(secrets[source["secretRef"]["name"]])
    env.update({item["name"]: item["value"] for item in container.get("env", []) if "value" in item})
    return env


def k8s_role(workload: Mapping[str, Any]) -> str:
    return workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def runtime_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (instruction, _) in enumerate(instructions) if instruction == "FROM")
    return instructions[last_from:]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, arguments in runtime_stage():
        if instruction == "ENV":
            env.update(token.split("=", 1) for token in shlex.split(arguments))  # type: ignore[arg-type]
    return env


def dockerignore_keeps(path: str) -> bool:
    """Whether the build context keeps `path` (later lines win, `!` re-includes, a directory rule covers what is in it)."""
    kept = True
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        rule = line.strip()
        if not rule or rule.startswith("#"):
            continue
        include = rule.startswith("!")
        pattern = rule.lstrip("!").strip("/")
        parts = path.strip("/").split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(prefix, pattern.removeprefix("**/")) for prefix in prefixes):
            kept = include
    return kept


def url_paths(text: str) -> list[str]:
    return re.findall(r"https?://[^/\s'\"]+(/[A-Za-z0-9_./-]*)", text)


def nginx_upstreams() -> dict[str, list[tuple[str, int]]]:
    text = (DEPLOY / "nginx.conf").read_text()
    return {
        name: [(host, int(port)) for host, port in re.findall(r"^\s*server\s+([A-Za-z0-9_.-]+):(\d+)", body, re.MULTILINE)]
        for name, body in re.findall(r"upstream\s+(\S+)\s*\{(.*?)\}", text, re.DOTALL)
    }


def deploy_texts() -> Iterator[tuple[str, str]]:
    for path in [DEPLOY / "Dockerfile", DEPLOY / "compose.yaml", DEPLOY / "nginx.conf", *sorted(K8S.rglob("*.yaml"))]:
        yield str(path.relative_to(ROOT)), path.read_text()


# --- the checks read on their own failures first ------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["parley", "serve", "--hots", "0.0.0.0"], ["parley", "projet"], ["parley", "serve", "--port", "eighty"], ["parley", "keys"], ["python", "-m", "service"]],
)
def test_the_command_check_refuses_what_parley_would_not_run(argv: list[str]) -> None:
    assert command_problem(argv) is not None


def test_the_command_check_knows_commands_main_registers() -> None:
    assert command_problem(["parley", "migrate", "--database", "postgresql://db/parley"]) is None
    assert command_problem(["parley", "keys", "create", "--name", "admin", "--role", "admin"]) is None


def test_the_dockerignore_check_follows_later_rules() -> None:
    assert dockerignore_keeps("service/app.py")
    assert not dockerignore_keeps("tests/conftest.py")
    assert not dockerignore_keeps(".venv/bin/python")


# --- every command, route and setting is real ---------------------------------------------------


def test_every_command_the_deploy_files_run_is_a_parley_command() -> None:
    runs = [(f"compose {name}", s["command"]) for name, s in compose_parley_services().items()]
    runs += [(f"k8s {w['metadata']['name']}", container_argv(c)) for w in workloads() for c in containers(w)]
    runs += [("Dockerfile CMD", yaml.safe_load(arguments)) for instruction, arguments in runtime_stage() if instruction == "CMD"]
    assert len(runs) >= 9
    assert [(where, problem) for where, argv in runs if (problem := command_problem(argv))] == []


def test_every_probe_and_healthcheck_asks_a_real_route() -> None:
    paths = [(f"k8s {w['metadata']['name']} {probe}", c[probe]["httpGet"]["path"])
             for w in workloads() for c in containers(w) for probe in ("readinessProbe", "livenessProbe", "startupProbe")
             if "httpGet" in c.get(probe, {})]
    paths += [("Dockerfile HEALTHCHECK", path) for instruction, arguments in runtime_stage() if instruction == "HEALTHCHECK"
              for path in url_paths(arguments)]
    paths += [(f"compose {name} healthcheck", path) for name, s in compose_services().items()
              for path in url_paths(" ".join(map(str, (s.get("healthcheck") or {}).get("test", []))))]
    assert {path for _, path in paths} >= {"/health", "/ready"}
    assert [(where, path) for where, path in paths if path not in served_routes()] == []


def test_every_parley_variable_named_in_the_deploy_files_is_a_setting_listed_in_env_example() -> None:
    named = {(where, variable) for where, text in deploy_texts() for variable in re.findall(r"PARLEY_[A-Z0-9_]+", text)}
    assert len({variable for _, variable in named}) >= 8
    assert sorted((where, v) for where, v in named if v not in settings_variables()) == [], "not a Settings field"
    assert sorted((where, v) for where, v in named if v not in env_example_variables()) == [], "not in deploy/env.example"


def test_every_environment_the_deploy_files_set_parses_as_settings() -> None:
    environments = [("Dockerfile", dockerfile_env())]
    environments += [(f"compose {name}", compose_env(s)) for name, s in compose_parley_services().items()]
    environments += [(f"k8s {w['metadata']['name']}", container_env(c)) for w in workloads() for c in containers(w)]
    problems = []
    for where, env in environments:
        try:
            Settings.from_env(env)
        except SettingsError as error:
            problems.append((where, str(error)))
    assert problems == []


# --- the image ----------------------------------------------------------------------------------


def test_the_image_is_built_in_one_stage_and_run_from_a_slim_one_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    assert sum(1 for instruction, _ in instructions if instruction == "FROM") >= 2
    runtime = runtime_stage()
    base = runtime[0][1].split()[0]
    arguments = dict(a.split("=", 1) for i, a in instructions if i == "ARG" and "=" in a)
    assert re.sub(r"\$\{(\w+)\}", lambda m: arguments[m.group(1)], base) == "python:3.11-slim"
    users = [arguments.split(":")[0] for instruction, arguments in runtime if instruction == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert [a for i, a in runtime if i == "COPY" and "--from" not in a] == [], "the runtime stage installs the built wheel only"
    assert "8000" in next(a for i, a in runtime if i == "EXPOSE").split()
    assert dockerfile_env()["PARLEY_LOG_FORMAT"] == "json"
    assert Settings.from_env(dockerfile_env()).host == "0.0.0.0"


def test_the_image_checks_its_own_health_with_python_not_curl() -> None:
    checks = [arguments for instruction, arguments in runtime_stage() if instruction == "HEALTHCHECK"]
    assert len(checks) == 1 and "python" in checks[0] and "curl" not in checks[0]
    assert url_paths(checks[0]) == ["/health"]


def test_the_build_context_keeps_every_source_the_builder_copies() -> None:
    sources = [word for instruction, arguments in dockerfile_instructions() if instruction == "COPY" and "--from" not in arguments
               for word in arguments.split()[:-1] if not word.startswith("--")]
    assert {"pyproject.toml", "service"} <= set(sources)
    assert [source for source in sources if not (ROOT / source).exists() or not dockerignore_keeps(source)] == []


def test_kubernetes_runs_the_images_own_user() -> None:
    uid = [arguments.split(":")[0] for instruction, arguments in runtime_stage() if instruction == "USER"][-1]
    for workload in workloads():
        pod = workload["spec"]["template"]["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True, workload["metadata"]["name"]
        assert str(pod.get("runAsUser", uid)) == uid, workload["metadata"]["name"]


# --- compose ------------------------------------------------------------------------------------


def test_compose_runs_every_role_with_two_api_replicas_and_two_senders() -> None:
    services = compose_parley_services()
    for role, command in ROLES.items():
        assert role in services and subcommand(services[role]["command"]) == command, role
    assert services["api"]["deploy"]["replicas"] >= 2
    assert services["deliver"]["deploy"]["replicas"] >= 2
    api = Settings.from_env(compose_env(services["api"]))
    assert (api.run_projections, api.run_webhooks) == (False, False), "views and webhooks run in their own services"


def test_compose_starts_in_order_database_then_migrate_then_the_rest() -> None:
    services = compose_services()
    database = compose_env(services["api"])["PARLEY_DATABASE_URL"].split("@")[1].split(":")[0]
    assert "healthcheck" in services[database] and services[database].get("volumes")
    assert services["migrate"]["depends_on"] == {database: {"condition": "service_healthy"}}
    for name, service in compose_parley_services().items():
        if name != "migrate":
            assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
    proxy_needs = {host for servers in nginx_upstreams().values() for host, _ in servers}
    assert all(services["proxy"]["depends_on"][host] == {"condition": "service_healthy"} for host in proxy_needs)


def test_compose_roles_without_http_turn_the_images_http_healthcheck_off() -> None:
    for name, service in compose_parley_services().items():
        serves = subcommand(service["command"]) in HTTP_COMMANDS
        assert (service.get("healthcheck") or {}).get("disable", False) is not serves, name


def test_every_compose_replica_signs_with_the_one_shared_key() -> None:
    raw = {name: service["environment"].get("PARLEY_SIGNING_KEY") for name, service in compose_parley_services().items()}
    assert len(set(raw.values())) == 1 and str(next(iter(raw.values()))).startswith("${PARLEY_SIGNING_KEY")


def test_the_proxy_balances_over_the_compose_api_services_and_passes_the_request_headers() -> None:
    upstreams = nginx_upstreams()
    text = (DEPLOY / "nginx.conf").read_text()
    assert set(re.findall(r"proxy_pass\s+http://([A-Za-z0-9_]+)", text)) <= set(upstreams)
    services = compose_services()
    for host, port in [server for servers in upstreams.values() for server in servers]:
        assert host in services, f"nginx upstream {host} is not a compose service"
        assert subcommand(services[host]["command"]) == "serve"
        assert Settings.from_env({**dockerfile_env(), **compose_env(services[host])}).port == port
    headers = set(re.findall(r"proxy_set_header\s+(\S+)", text))
    assert {"X-Request-ID", "X-Forwarded-For"} <= headers
    assert services["proxy"]["volumes"] == ["./nginx.conf:/etc/nginx/nginx.conf:ro"]


# --- Kubernetes ---------------------------------------------------------------------------------


def test_kubernetes_runs_every_role_as_a_deployment_or_the_migration_job() -> None:
    by_role = {k8s_role(w): w for w in workloads()}
    assert set(by_role) == set(ROLES)
    for role, command in ROLES.items():
        assert {subcommand(container_argv(c)) for c in containers(by_role[role])} == {command}, role
    assert by_role["migrate"]["kind"] == "Job"
    api = Settings.from_env(container_env(containers(by_role["api"])[0]))
    assert (api.run_projections, api.run_webhooks) == (False, False)


def test_kubernetes_manifests_name_no_namespace() -> None:
    assert [name for name, document in manifests() if "namespace" in document.get("metadata", {})] == []


def test_every_kubernetes_container_has_resources_and_its_config_and_secrets() -> None:
    config_maps = {c["metadata"]["name"] for c in objects("ConfigMap")}
    secrets = {s["metadata"]["name"] for s in objects("Secret")}
    for workload in workloads():
        for container in containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]) & set(container["resources"]["limits"]), where
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
            refs = container.get("envFrom", [])
            assert {r["configMapRef"]["name"] for r in refs if "configMapRef" in r} <= config_maps, where
            assert {r["secretRef"]["name"] for r in refs if "secretRef" in r} <= secrets, where
            assert {"PARLEY_DATABASE_URL", "PARLEY_SIGNING_KEY"} <= set(container_env(container)), where


def test_secrets_stay_out_of_the_config_map() -> None:
    for config_map in objects("ConfigMap"):
        assert {"PARLEY_DATABASE_URL", "PARLEY_SIGNING_KEY"}.isdisjoint(config_map.get("data", {}))


def test_the_api_is_probed_served_and_autoscaled() -> None:
    (api,) = [w for w in objects("Deployment") if k8s_role(w) == "api"]
    (container,) = api["spec"]["template"]["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert all(container[p]["httpGet"]["port"] in ports for p in ("readinessProbe", "livenessProbe"))
    assert Settings.from_env(container_env(container)).port in ports.values()
    (service,) = objects("Service")
    assert service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    assert all(port["targetPort"] in ports or port["targetPort"] in ports.values() for port in service["spec"]["ports"])
    (autoscaler,) = objects("HorizontalPodAutoscaler")
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    assert autoscaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": api["metadata"]["name"]}
    assert 2 <= autoscaler["spec"]["minReplicas"] < autoscaler["spec"]["maxReplicas"]


def test_the_migration_and_the_rest_are_applied_apart_and_the_secret_example_never() -> None:
    release = kustomized_files(K8S)
    migration = kustomized_files(K8S / "migrate")
    assert all((K8S / name).is_file() for name in release | migration)
    kinds = {name: {d["kind"] for n, d in manifests() if n == name} for name, _ in manifests()}
    assert set().union(*(kinds[name] for name in migration)) == {"ConfigMap", "Job"}
    assert "Job" not in set().union(*(kinds[name] for name in release))
    secrets = {name for name, kind in kinds.items() if "Secret" in kind}
    assert secrets and not secrets & (release | migration)
    assert set(kinds) - secrets == release | migration, "a manifest no kustomization applies"


def test_both_kustomizations_set_the_one_image_every_workload_runs() -> None:
    assert kustomized_images(K8S) == kustomized_images(K8S / "migrate")
    images = {c["image"].split(":")[0] for w in workloads() for c in containers(w)}
    assert images == {image["name"] for image in kustomized_images(K8S)}
