"""The agent's configuration, read the way the Amazon ECS container agent reads it.

``KEY=VALUE`` lines in ``/etc/ecs/ecs.config`` (or ``--config FILE``), overridden by
environment variables. The file is read as ecs-init reads it: split at the first
``=``, blank lines and ``#`` comments skipped, the last line for a key winning (so
``echo KEY=V >> ecs.config`` works), lines without ``=`` skipped (noted in
``warnings``). One departure: matching surrounding quotes are removed, as systemd's
EnvironmentFile does, where ecs-init would keep them in the value.

As in the agent, an empty value or an empty JSON list means "not set", and a
duration below the agent's minimum is replaced as the agent replaces it (noted in
``warnings``). Unlike the agent, which logs a bad value and runs with the default, a
bad value raises ``ConfigError`` naming the variable, the value and what is expected.
ECS_* names Dockyard does not read are listed in ``unknown``.

Dockyard's own: ``DOCKYARD_AVAILABILITY_ZONE`` (attribute ``ecs.availability-zone``),
``DOCKYARD_INSTANCE_CPU`` (CPU units) and ``DOCKYARD_INSTANCE_MEMORY`` (MiB) declare
an instance's size, so several agents can share one Docker Engine. The CLI passes its
flags in ``environ``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn, TypeVar

from dockyard.agent.auth_data import AUTH_TYPES, Credentials, find_credentials, parse_auth_data

DEFAULT_CONFIG_PATH = Path("/etc/ecs/ecs.config")
LOGGING_DRIVERS = (
    *("json-file", "syslog", "journald", "gelf", "fluentd", "awslogs", "splunk"),
    *("logentries", "sumologic", "none", "awsfirelens"),
)
CUSTOM_ATTRIBUTE_LIMIT = 10
# ECS's attribute character rules; tests check they match dockyard.ecs.shapes.
ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_./\\-]{1,128}")
ATTRIBUTE_VALUE = re.compile(r"[A-Za-z0-9_.@/\\: -]{1,128}")
_RESERVED_ATTRIBUTE_PREFIXES = ("ecs.", "com.amazonaws.ecs.")
_CLUSTER = re.compile(r"(arn:[^:]+:ecs:[^:]*:[0-9]*:cluster/)?[A-Za-z0-9_-]{1,255}")
_WHOLE = re.compile(r"[0-9]+")
_DURATION = re.compile(r"(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+")
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)")
_MICROSECONDS = {"ns": 0.001, "us": 1, "µs": 1, "μs": 1, "ms": 1e3, "s": 1e6, "m": 6e7, "h": 3.6e9}
_TRUE, _FALSE = frozenset({"1", "t", "T"}), frozenset({"0", "f", "F"})

T = TypeVar("T")


class ConfigError(Exception):
    """A setting the agent cannot run with; the message says which and why."""

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"
    CRIT = "crit"

    @property
    def logging_level(self) -> int:
        names = {"warn": "WARNING", "crit": "CRITICAL"}
        return logging.getLevelNamesMapping()[names.get(self.value, self.value.upper())]


class ImagePullBehavior(StrEnum):
    DEFAULT = "default"  # pull; if the pull fails, use the cached image
    ALWAYS = "always"  # pull; if the pull fails, the task fails
    ONCE = "once"  # pull only if no earlier task on this instance pulled it
    PREFER_CACHED = "prefer-cached"  # pull only if the image is not cached


@dataclass(frozen=True)
class AgentConfig:
    cluster: str = "default"
    log_level: LogLevel = LogLevel.INFO
    data_dir: Path = Path("/var/lib/ecs/data")
    reserved_memory: int = 0  # MiB kept back from tasks
    reserved_ports: tuple[int, ...] = (22, 2375, 2376, 51678, 51679)
    reserved_ports_udp: tuple[int, ...] = ()
    available_logging_drivers: tuple[str, ...] = ("json-file", "none")
    engine_auth_type: str | None = None
    engine_auth: Mapping[str, Credentials] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )
    container_stop_timeout: timedelta = timedelta(seconds=30)
    container_start_timeout: timedelta = timedelta(minutes=3)
    task_cleanup_wait: timedelta = timedelta(hours=3)
    image_pull_behavior: ImagePullBehavior = ImagePullBehavior.DEFAULT
    image_pull_inactivity_timeout: timedelta = timedelta(minutes=1)
    image_cleanup_disabled: bool = False
    image_cleanup_interval: timedelta = timedelta(minutes=30)
    image_minimum_cleanup_age: timedelta = timedelta(hours=1)
    num_images_delete_per_cycle: int = 5
    instance_attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    privileged_disabled: bool = False
    task_cpu_mem_limit: bool = True  # ECS_ENABLE_TASK_CPU_MEM_LIMIT
    task_iam_role_enabled: bool = False  # stored; the credentials endpoint comes with IAM
    task_iam_role_network_host: bool = False
    availability_zone: str | None = None  # DOCKYARD_AVAILABILITY_ZONE
    instance_cpu: int | None = None  # DOCKYARD_INSTANCE_CPU; None: 1024 per host core
    instance_memory: int | None = None  # DOCKYARD_INSTANCE_MEMORY (MiB); None: host memory
    unknown: tuple[str, ...] = ()  # ECS_* variables that were set and are ignored
    warnings: tuple[str, ...] = ()  # values replaced as the agent replaces them


def credentials_for(config: AgentConfig, image: str) -> Credentials | None:
    """(username, password) from ECS_ENGINE_AUTH_DATA for the image's registry, or None."""
    return find_credentials(config.engine_auth, image)


def load_config(path: Path | None, environ: Mapping[str, str]) -> AgentConfig:
    """The configuration from ``path`` (default ``/etc/ecs/ecs.config``, which may be
    absent; a named file must exist) overridden by ``environ``."""
    settings = _Settings(_read_file(path or DEFAULT_CONFIG_PATH, required=path is not None))
    settings.overlay(environ)
    defaults = AgentConfig()
    values: dict[str, Any] = {
        name: settings.get(variable, parse, getattr(defaults, name))
        for name, (variable, parse) in _PLAIN.items()
    }
    for name, (variable, minimum, clamp) in _DURATIONS.items():
        values[name] = settings.duration(variable, getattr(defaults, name), minimum, clamp)
    # An empty list is "not set" to the agent too.
    for name, (variable, parse) in _LISTS.items():
        values[name] = settings.get(variable, parse, ()) or getattr(defaults, name)
    memory = values["instance_memory"]
    if memory is not None and values["reserved_memory"] >= memory:
        settings.fail("ECS_RESERVED_MEMORY", f"must be less than DOCKYARD_INSTANCE_MEMORY={memory}")
    auth_type = values["engine_auth_type"]
    if auth_type is None and settings.is_set("ECS_ENGINE_AUTH_DATA"):
        settings.fail(
            "ECS_ENGINE_AUTH_DATA", "set without ECS_ENGINE_AUTH_TYPE (docker or dockercfg)"
        )
    auth = settings.get(
        "ECS_ENGINE_AUTH_DATA", lambda raw: parse_auth_data(auth_type, raw), None, secret=True
    )
    return AgentConfig(
        **values,
        engine_auth=MappingProxyType(auth or {}),
        unknown=settings.unknown(),
        warnings=tuple(settings.warnings),
    )


def parse_duration(text: str) -> timedelta:
    """A Go ``time.ParseDuration`` string that is not negative: ``300ms``, ``30s``,
    ``1m30s``, ``1.5h``, ``0``."""
    if text.strip() == "0":
        return timedelta(0)
    if not _DURATION.fullmatch(text.strip()):
        raise ValueError("expected a Go duration such as 30s, 1m30s or 3h")
    parts = _DURATION_PART.findall(text)
    return timedelta(microseconds=sum(float(n) * _MICROSECONDS[u] for n, u in parts))


def format_duration(value: timedelta) -> str:
    """``timedelta`` back to Go's notation, for messages: 5400 s -> ``1h30m``."""
    rest, parts = round(value.total_seconds() * 1000), []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


# The file and the environment


@dataclass(frozen=True)
class _Setting:
    value: str
    where: str  # "FILE:LINE" or "the environment"


def _read_file(path: Path, *, required: bool) -> tuple[dict[str, _Setting], list[str]]:
    """Settings by name, and warnings about lines skipped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: no such configuration file") from None
        return {}, []
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot be read ({error})") from None
    settings: dict[str, _Setting] = {}
    warnings: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        if not equals:
            warnings.append(f"{path}:{number}: skipped, not KEY=VALUE: {line[:40]!r}")
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        settings[name.strip()] = _Setting(value, f"{path}:{number}")
    return settings, warnings


class _Settings:
    """Merged settings; remembers which names were read, to report the rest."""

    def __init__(self, file: tuple[dict[str, _Setting], list[str]]) -> None:
        self._values, self.warnings = file
        self._read: set[str] = set()

    def overlay(self, environ: Mapping[str, str]) -> None:
        for name, value in environ.items():
            if name.startswith(("ECS_", "DOCKYARD_")) and value.strip():
                self._values[name] = _Setting(value.strip(), "the environment")

    def is_set(self, name: str) -> bool:
        setting = self._values.get(name)
        return setting is not None and setting.value != ""

    def get(self, name: str, parse: Callable[[str], T], default: T, *, secret: bool = False) -> T:
        self._read.add(name)
        if not self.is_set(name):
            return default
        try:
            return parse(self._values[name].value)
        except ValueError as error:
            self.fail(name, str(error), secret=secret)

    def duration(
        self, name: str, default: timedelta, minimum: timedelta = timedelta(0), clamp: bool = False
    ) -> timedelta:
        """Zero means the default; below ``minimum``, the agent uses the minimum
        (``clamp``) or the default, and says so."""
        value = self.get(name, parse_duration, default)
        if value == timedelta(0):
            return default
        if value >= minimum:
            return value
        replacement = minimum if clamp else default
        self.warnings.append(
            f"{name}={format_duration(value)} is below the minimum {format_duration(minimum)}; "
            f"using {format_duration(replacement)}"
        )
        return replacement

    def fail(self, name: str, problem: str, *, secret: bool = False) -> NoReturn:
        setting = self._values[name]
        shown = "<not shown>" if secret else repr(setting.value)
        raise ConfigError(f"{name}={shown}: {problem} (set in {setting.where})", name)

    def unknown(self) -> tuple[str, ...]:
        return tuple(
            sorted(n for n in self._values if n.startswith("ECS_") and n not in self._read)
        )


# Value parsers: each raises ValueError("expected ...") for a bad value.


def _bool(text: str) -> bool:
    if text in _TRUE or text.lower() == "true":
        return True
    if text in _FALSE or text.lower() == "false":
        return False
    raise ValueError("expected true or false")


def _whole(unit: str, minimum: int = 0) -> Callable[[str], int]:
    expected = f"expected a whole number of {unit}" + (f", at least {minimum}" if minimum else "")

    def parse(text: str) -> int:
        if not _WHOLE.fullmatch(text) or int(text) < minimum:
            raise ValueError(expected)
        return int(text)

    return parse


def _choice(choices: Any, *, lower: bool = False) -> Callable[[str], Any]:
    allowed = [str(choice) for choice in choices]

    def parse(text: str) -> Any:
        key = text.lower() if lower else text
        if key not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return choices(key) if isinstance(choices, type) else key

    return parse


def _cluster(text: str) -> str:
    if not _CLUSTER.fullmatch(text):
        raise ValueError(
            "expected a cluster name (up to 255 letters, numbers, hyphens and underscores) "
            "or a cluster ARN"
        )
    return text


def _json_list(text: str, valid: Callable[[Any], bool], expected: str) -> tuple[Any, ...]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        items = None
    if not isinstance(items, list) or not all(valid(item) for item in items):
        raise ValueError(f"expected a JSON array of {expected}")
    return tuple(items)


def _ports(text: str) -> tuple[int, ...]:
    return _json_list(
        text, lambda p: type(p) is int and 1 <= p <= 65535, "port numbers such as [22, 2375]"
    )


def _logging_drivers(text: str) -> tuple[str, ...]:
    drivers = _json_list(text, lambda d: isinstance(d, str), 'driver names such as ["json-file"]')
    unknown = [d for d in drivers if d not in LOGGING_DRIVERS]
    if unknown:
        raise ValueError(
            f"unknown logging driver {unknown[0]!r}: expected some of {LOGGING_DRIVERS}"
        )
    return tuple(drivers)


def _attributes(text: str) -> Mapping[str, str]:
    try:
        attributes = json.loads(text)
    except json.JSONDecodeError:
        attributes = None
    if not isinstance(attributes, dict):
        raise ValueError('expected a JSON object of attribute names to values: {"stack":"prod"}')
    for name, value in attributes.items():
        if not ATTRIBUTE_NAME.fullmatch(name) or name.startswith(_RESERVED_ATTRIBUTE_PREFIXES):
            raise ValueError(
                f"attribute name {name!r}: expected 1-128 letters, numbers, hyphens, underscores,"
                " periods or slashes, not starting with ecs. or com.amazonaws.ecs."
            )
        if not isinstance(value, str) or not _attribute_value(value):
            raise ValueError(
                f"attribute {name!r}: expected a string value of 1-128 letters, numbers, hyphens, "
                "underscores, periods, at signs, slashes, colons or inner spaces"
            )
    if len(attributes) > CUSTOM_ATTRIBUTE_LIMIT:
        raise ValueError(f"expected at most {CUSTOM_ATTRIBUTE_LIMIT} custom attributes")
    return MappingProxyType(attributes)


def _attribute_value(value: str) -> bool:
    return bool(ATTRIBUTE_VALUE.fullmatch(value)) and value == value.strip(" ")


def _zone(text: str) -> str:
    if not _attribute_value(text):
        raise ValueError("expected an availability zone name such as us-east-1a")
    return text


# AgentConfig field -> (variable, parser); the field's default is the variable's.
_PLAIN: dict[str, tuple[str, Callable[[str], Any]]] = {
    "cluster": ("ECS_CLUSTER", _cluster),
    "log_level": ("ECS_LOGLEVEL", _choice(LogLevel, lower=True)),
    "data_dir": ("ECS_DATADIR", Path),
    "reserved_memory": ("ECS_RESERVED_MEMORY", _whole("MiB")),
    "engine_auth_type": ("ECS_ENGINE_AUTH_TYPE", _choice(AUTH_TYPES)),
    "image_pull_behavior": ("ECS_IMAGE_PULL_BEHAVIOR", _choice(ImagePullBehavior)),
    "image_cleanup_disabled": ("ECS_DISABLE_IMAGE_CLEANUP", _bool),
    "num_images_delete_per_cycle": ("ECS_NUM_IMAGES_DELETE_PER_CYCLE", _whole("images", 1)),
    "instance_attributes": ("ECS_INSTANCE_ATTRIBUTES", _attributes),
    "privileged_disabled": ("ECS_DISABLE_PRIVILEGED", _bool),
    "task_cpu_mem_limit": ("ECS_ENABLE_TASK_CPU_MEM_LIMIT", _bool),
    "task_iam_role_enabled": ("ECS_ENABLE_TASK_IAM_ROLE", _bool),
    "task_iam_role_network_host": ("ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST", _bool),
    "availability_zone": ("DOCKYARD_AVAILABILITY_ZONE", _zone),
    "instance_cpu": ("DOCKYARD_INSTANCE_CPU", _whole("CPU units", 1)),
    "instance_memory": ("DOCKYARD_INSTANCE_MEMORY", _whole("MiB", 1)),
}
_LISTS: dict[str, tuple[str, Callable[[str], tuple[Any, ...]]]] = {
    "reserved_ports": ("ECS_RESERVED_PORTS", _ports),
    "reserved_ports_udp": ("ECS_RESERVED_PORTS_UDP", _ports),
    "available_logging_drivers": ("ECS_AVAILABLE_LOGGING_DRIVERS", _logging_drivers),
}
# field -> (variable, the agent's minimum, below it: use the minimum (True) or the default)
_1M = timedelta(minutes=1)
_DURATIONS: dict[str, tuple[str, timedelta, bool]] = {
    "container_stop_timeout": ("ECS_CONTAINER_STOP_TIMEOUT", timedelta(seconds=1), True),
    "container_start_timeout": ("ECS_CONTAINER_START_TIMEOUT", timedelta(seconds=45), True),
    "task_cleanup_wait": ("ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION", _1M, False),
    "image_pull_inactivity_timeout": ("ECS_IMAGE_PULL_INACTIVITY_TIMEOUT", _1M, False),
    "image_cleanup_interval": ("ECS_IMAGE_CLEANUP_INTERVAL", timedelta(minutes=10), False),
    "image_minimum_cleanup_age": ("ECS_IMAGE_MINIMUM_CLEANUP_AGE", timedelta(0), False),
}
