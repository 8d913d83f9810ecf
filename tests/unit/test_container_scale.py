"""docker-compose.yml's `scale` profile, read as compose reads it (no Docker engine needed): two
chatrelay instances configured alike plus REDIS_URL, Redis 7, and HAProxy on the committed
deploy/haproxy.cfg, sending to exactly those instances; every service waits for the health of
what it needs; only the balancer is published.

Each checker is also shown the regression it exists for, so it cannot quietly accept
everything."""

from __future__ import annotations

import re
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.balancer import config, expand, haproxy, section
from tests.container import (
    ROOT,
    compose,
    environment,
    final_stage,
    instances,
    interpolate,
    profiles,
    service,
)

SCALE = "scale"
HAPROXY_CONFIG_IN_THE_IMAGE = "/usr/local/etc/haproxy/haproxy.cfg"  # the official image's CMD


def scale_instances() -> list[str]:
    return [name for name in instances() if SCALE in profiles(name)]


def app_port() -> int:
    """The port chatrelay listens on in its container (the Dockerfile's EXPOSE)."""
    (port,) = [i.args for i in final_stage() if i.keyword == "EXPOSE"]
    return int(port)


def dependency_problem(services: dict[str, dict[str, Any]]) -> str | None:
    """Why a service could start before what it needs answers, or not start at all."""
    for name, svc in services.items():
        needs = svc.get("depends_on", {})
        if isinstance(needs, list):
            return f"{name}: `depends_on: {needs}` waits for a container start, not for health"
        for need, how in needs.items():
            if need not in services:
                return f"{name} depends on {need}, which is no service"
            if how.get("condition") != "service_healthy":
                return f"{name} does not wait for {need} to be healthy: {how}"
            if "healthcheck" not in services[need]:
                return f"{name} waits for {need}'s health, but {need} has no healthcheck"
            theirs = set(services[need].get("profiles", []))
            if theirs and not theirs & set(svc.get("profiles", [])):
                return f"{name} depends on {need}, which the same profiles do not start"
    return None


def published(name: str) -> list[tuple[str, int, int]]:
    """A service's `ports`, each as (host address, or "" for all, host port, container port)."""
    found = []
    for spec in service(name).get("ports", []):
        match = re.fullmatch(r"(?:(?P<ip>[\d.]+):)?(?P<host>\d+):(?P<container>\d+)", str(spec))
        assert match, f"{name}: a port mapping this test does not read: {spec!r}"
        found.append((match["ip"] or "", int(match["host"]), int(match["container"])))
    return found


def test_the_scale_profile_is_two_instances_redis_and_a_balancer() -> None:
    services = compose()["services"]
    assert {name for name in services if not profiles(name)} == {"db", "app"}
    assert {name for name in services if SCALE in profiles(name)} == {
        "app-a",
        "app-b",
        "redis",
        "balancer",
    }
    assert scale_instances() == ["app-a", "app-b"]
    assert str(service("db")["image"]).startswith("postgres:16")
    assert str(service("redis")["image"]).startswith("redis:7")


def test_every_service_waits_for_the_health_of_what_it_needs() -> None:
    assert dependency_problem(compose()["services"]) is None
    for name in scale_instances():
        assert set(service(name)["depends_on"]) == {"db", "redis"}
    assert set(service("balancer")["depends_on"]) == set(scale_instances())


@pytest.mark.parametrize(
    ("name", "needs"),
    [
        ("app-a", ["db", "redis"]),  # started, not ready: the first requests fail
        ("app-a", {"redis": {"condition": "service_started"}}),
        ("balancer", {"app-a": {"condition": "service_healthy"}, "ghost": {}}),
    ],
)
def test_the_dependency_check_refuses(name: str, needs: object) -> None:
    services = compose()["services"]
    services[name]["depends_on"] = needs
    assert dependency_problem(services) is not None


def test_the_dependency_check_refuses_a_need_without_a_healthcheck_or_profile() -> None:
    services = compose()["services"]
    del services["redis"]["healthcheck"]
    assert "no healthcheck" in (dependency_problem(services) or "")
    services = compose()["services"]
    services["app-b"]["profiles"] = ["other"]
    assert "same profiles" in (dependency_problem(services) or "")


@pytest.mark.parametrize("name", ["app-a", "app-b"])
def test_each_instance_is_the_app_plus_redis(name: str) -> None:
    """The same database, secret and settings as the single app (a token one instance signs,
    every other accepts), and the profile's Redis."""
    env = environment(service(name))
    assert {k: v for k, v in env.items() if k != "REDIS_URL"} == environment(service("app"))
    url = urlsplit(interpolate(env["REDIS_URL"], {}))
    assert (url.scheme, url.hostname, url.port or 6379) == ("redis", "redis", 6379)
    assert "REDIS_URL" not in environment(service("app"))  # one process, no Redis needed
    shell = {"POSTGRES_PASSWORD": "pw", "AUTH_SECRET": "s" * 40}
    assert interpolate(env["DATABASE_URL"], shell).endswith("@db:5432/chatrelay")


def test_the_balancer_runs_the_committed_config() -> None:
    balancer = service("balancer")
    mounts = [str(volume).split(":") for volume in balancer["volumes"]]
    assert ["./deploy/haproxy.cfg", HAPROXY_CONFIG_IN_THE_IMAGE, "ro"] in mounts
    assert (ROOT / "deploy" / "haproxy.cfg").is_file()


def test_the_balancer_sends_to_exactly_the_instances() -> None:
    """As compose runs it, HAProxy's servers are the profile's instances on their port."""
    servers = section(config(), "backend", "chatrelay").find("server")
    addresses = {line[1]: expand(line[2], {}).strip('"') for line in servers}
    assert addresses == {name: f"{name}:{app_port()}" for name in scale_instances()}


def test_only_the_balancer_is_published() -> None:
    """Clients reach the instances through HAProxy only; its stats page is for this host."""
    for name in scale_instances():
        assert published(name) == []
    listen = expand(section(config(), "frontend", "chatrelay").find("bind")[0][1], {})
    stats = expand(section(config(), "frontend", "stats").find("bind")[0][1], {})
    ports = {container: (ip, host) for ip, host, container in published("balancer")}
    assert ports[int(listen.strip('"').rsplit(":", 1)[1])][0] == ""
    assert ports[int(stats.strip('"').rsplit(":", 1)[1])][0] == "127.0.0.1"
    hosts = [host for name in compose()["services"] for _, host, _ in published(name)]
    assert len(hosts) == len(set(hosts)), f"two services on one host port: {hosts}"


def test_the_balancer_image_is_the_haproxy_the_tests_run() -> None:
    """tests/integration/test_balancer.py runs Debian's HAProxy on the same file: compose runs
    that release too, so what the tests accept is what runs."""
    version = subprocess.run([haproxy(), "-v"], capture_output=True, text=True, check=True)
    release = re.search(r"HAProxy version (\d+\.\d+)", version.stdout)
    assert release, version.stdout
    assert str(service("balancer")["image"]).startswith(f"haproxy:{release[1]}")
