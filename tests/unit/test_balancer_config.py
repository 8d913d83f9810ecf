"""deploy/haproxy.cfg keeps what streams and several instances need from a balancer: nothing
buffers a response, no timeout cuts a reply chatrelay is still producing, requests go round
robin to instances whose /readyz answers 200, and HAProxy itself accepts the file, both as
compose runs it and as the tests do.

Each checker is also shown the regression it exists for, so it cannot quietly accept
everything."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatrelay.config import Settings
from tests.balancer import CONFIG, Section, check, config, expand, parse, section, variables
from tests.container import environment, interpolate, service

# Debian's stock /etc/haproxy/haproxy.cfg, the usual starting point (timeouts in milliseconds).
DEBIAN_DEFAULTS = """
defaults
    mode http
    timeout connect 5000
    timeout client  50000
    timeout server  50000
frontend chatrelay
    bind :8080
    default_backend chatrelay
backend chatrelay
    server app-a app-a:8000
"""
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def seconds(value: str) -> float:
    """An HAProxy duration (`10m`, `1500ms`; a bare number is milliseconds)."""
    match = re.fullmatch(r"(\d+)(us|ms|s|m|h|d)?", value)
    assert match, f"not an HAProxy duration: {value!r}"
    return int(match[1]) * _UNITS[match[2] or "ms"]


def setting(sections: list[Section], proxy: Section, *keyword: str) -> tuple[str, ...] | None:
    """A proxy's line for `keyword`: its own, else the one of the defaults section before it."""
    own = proxy.find(*keyword)
    if own:
        return own[-1]
    before = sections[: sections.index(proxy)]
    defaults = [s for s in before if s.kind == "defaults"]
    inherited = defaults[-1].find(*keyword) if defaults else []
    return inherited[-1] if inherited else None


def buffering_problem(sections: list[Section]) -> str | None:
    """What would make HAProxy hold a response's body instead of passing it on."""
    for s in sections:
        for line in s.lines:
            if line[0] == "compression" or line[:2] == ("filter", "compression"):
                return f"{s.kind} {s.name}: compression holds the stream back: {' '.join(line)}"
            if line[:2] == ("http-response", "wait-for-body"):
                return f"{s.kind} {s.name}: waits for the whole response: {' '.join(line)}"
    return None


def timeout_problem(sections: list[Section], settings: Settings) -> str | None:
    """A timeout that would cut a reply still being produced. A JSON turn sends nothing until
    the model is done (TURN_TIMEOUT_SECONDS); a stream is quiet up to SSE_PING_SECONDS; after a
    WebSocket upgrade `timeout tunnel` (or, unset, client and server) applies, and a WebSocket
    turn is no shorter than a JSON one."""
    longest_quiet = max(settings.turn_timeout_seconds, settings.sse_ping_seconds)
    for kind in ("frontend", "backend"):
        proxy = section(sections, kind, "chatrelay")
        found = {
            name: setting(sections, proxy, "timeout", name)
            for name in ("client", "server", "tunnel")
        }
        for name in ("client", "server"):
            line = found[name]
            if line is None:
                return f"{kind}: no timeout {name} (HAProxy warns, and never frees a dead peer)"
            if seconds(line[2]) <= longest_quiet:
                return f"{kind}: timeout {name} {line[2]} cuts a reply quiet for {longest_quiet} s"
        tunnel = found["tunnel"]
        if tunnel is not None and seconds(tunnel[2]) <= longest_quiet:
            return (
                f"{kind}: timeout tunnel {tunnel[2]} cuts a WebSocket quiet for {longest_quiet} s"
            )
    return None


def balancing_problem(sections: list[Section]) -> str | None:
    """Round robin over servers that are health-checked on /readyz (not /healthz, which
    answers 200 while the database is away)."""
    backend = section(sections, "backend", "chatrelay")
    balance = setting(sections, backend, "balance")
    if balance is not None and balance[1] != "roundrobin":
        return f"balance {balance[1]}, not round robin"
    if setting(sections, backend, "option", "httpchk") is None:
        return "no `option httpchk`: a server counts as up as long as it accepts connections"
    send = setting(sections, backend, "http-check", "send")
    if send is None or "uri" not in send or send[send.index("uri") + 1] != "/readyz":
        return f"the health check does not ask /readyz: {send}"
    if setting(sections, backend, "http-check", "expect") != (
        "http-check",
        "expect",
        "status",
        "200",
    ):
        return "the health check does not expect status 200"
    checked = "check" in (setting(sections, backend, "default-server") or ())
    servers = backend.find("server")
    if not servers:
        return "no servers"
    unchecked = [line[1] for line in servers if not checked and "check" not in line[3:]]
    return f"servers without health checks: {unchecked}" if unchecked else None


def test_nothing_buffers_a_response() -> None:
    assert buffering_problem(config()) is None


@pytest.mark.parametrize(
    "line",
    [
        "compression algo gzip",
        "compression type text/event-stream",
        "filter compression",
        "http-response wait-for-body time 1s",
    ],
)
def test_the_buffering_check_refuses(line: str) -> None:
    """Regression-shaped: gzip on text/event-stream sends nothing until a compression block
    fills; `wait-for-body` holds the whole reply."""
    text = CONFIG.read_text() + f"\nbackend extra\n    {line}\n"
    assert buffering_problem(parse(text)) is not None


def compose_settings(name: str) -> Settings:
    """The settings a compose instance runs with, as far as timeouts go."""
    env = environment(service(name))
    fields = ("TURN_TIMEOUT_SECONDS", "SSE_PING_SECONDS")
    overrides = {field.lower(): interpolate(env[field], {}) for field in fields if field in env}
    return Settings(_env_file=None, **overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["app-a", "app-b"])
def test_no_timeout_cuts_a_reply_still_being_produced(name: str) -> None:
    assert timeout_problem(config(), compose_settings(name)) is None


def test_the_timeout_check_refuses_debians_stock_timeouts() -> None:
    """Regression: Debian's stock 50 s server and client timeouts cut a JSON turn of a minute,
    and a stream whose model thinks for as long before its first token."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert "timeout client 50000" in (timeout_problem(parse(DEBIAN_DEFAULTS), settings) or "")
    short_tunnel = CONFIG.read_text().replace("timeout tunnel 1h", "timeout tunnel 30s")
    assert "tunnel" in (timeout_problem(parse(short_tunnel), settings) or "")
    longer_turns = Settings(_env_file=None, turn_timeout_seconds=900)  # type: ignore[call-arg]
    assert timeout_problem(config(), longer_turns) is not None  # raise them together


def test_durations_read_as_haproxy_reads_them() -> None:
    assert seconds("50000") == 50 and seconds("10m") == 600 and seconds("1h") == 3600
    with pytest.raises(AssertionError):
        seconds("10 m")


def test_requests_go_round_robin_to_instances_ready_on_readyz() -> None:
    assert balancing_problem(config()) is None


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("balance roundrobin", "balance source"),
        ("uri /readyz", "uri /healthz"),
        ("    option httpchk\n", "\n"),
        ("http-check expect status 200", "http-check expect status 200-503"),
        ("default-server check ", "default-server "),
    ],
)
def test_the_balancing_check_refuses(old: str, new: str) -> None:
    text = CONFIG.read_text()
    assert old in text
    assert balancing_problem(parse(text.replace(old, new))) is not None


def test_every_address_has_a_default_for_compose() -> None:
    """Compose sets none of the variables: each needs a default, and the defaults are the
    compose form (the tests set all of them)."""
    found = variables(config())
    assert set(found) == {
        "CHATRELAY_LISTEN",
        "CHATRELAY_STATS",
        "CHATRELAY_APP_A",
        "CHATRELAY_APP_B",
    }
    assert None not in found.values()
    assert expand('"${CHATRELAY_APP_A-app-a:8000}"', {}) == '"app-a:8000"'
    assert expand('"${CHATRELAY_APP_A-app-a:8000}"', {"CHATRELAY_APP_A": "x:1"}) == '"x:1"'


# As compose runs it (its service names do not resolve here: `init-addr none` lets HAProxy
# start without them, and it asks only Docker's DNS, on 127.0.0.11), and as the tests run it.
AS_COMPOSE: dict[str, str] = {}
AS_THE_TESTS = {
    "CHATRELAY_LISTEN": "127.0.0.1:18080",
    "CHATRELAY_STATS": "127.0.0.1:18404",
    "CHATRELAY_APP_A": "127.0.0.1:18001",
    "CHATRELAY_APP_B": "127.0.0.1:18002",
}


@pytest.mark.parametrize("environ", [AS_COMPOSE, AS_THE_TESTS], ids=["compose", "tests"])
def test_haproxy_accepts_the_configuration(environ: dict[str, str]) -> None:
    result = check(CONFIG, environ)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_haproxy_checks_refuse_a_broken_configuration(tmp_path: Path) -> None:
    """`haproxy -c` is a real verdict: an empty address and a misspelt timeout fail it."""
    result = check(CONFIG, {**AS_THE_TESTS, "CHATRELAY_APP_B": ""})
    assert result.returncode != 0 and "'server' expects" in result.stderr
    broken = tmp_path / "haproxy.cfg"
    broken.write_text(CONFIG.read_text().replace("timeout server 10m", "timeout server 10 min"))
    assert check(broken, AS_THE_TESTS).returncode != 0
