"""The agent's configuration: ecs.config files and environment variables, read the way
the Amazon ECS container agent reads them, with bad values named and explained."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dockyard.agent import config as config_module
from dockyard.agent.auth_data import split_image
from dockyard.agent.config import (
    AgentConfig,
    ConfigError,
    ImagePullBehavior,
    LogLevel,
    credentials_for,
    load_config,
    parse_duration,
)

HUB_AUTH = json.dumps(
    {"https://index.docker.io/v1/": {"username": "my_name", "password": "my_password"}}
)


@pytest.fixture(autouse=True)
def no_host_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never read this machine's /etc/ecs/ecs.config."""
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", tmp_path / "absent.config")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ecs.config"
    path.write_text(text)
    return path


def from_env(**environ: str) -> AgentConfig:
    return load_config(None, environ)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# What a file or the environment gives


def test_defaults_are_the_agents() -> None:
    config = from_env()
    assert config == AgentConfig()
    assert config.cluster == "default"
    assert config.log_level is LogLevel.INFO
    assert config.data_dir == Path("/var/lib/ecs/data")
    assert config.reserved_memory == 0
    assert config.reserved_ports == (22, 2375, 2376, 51678, 51679)
    assert config.reserved_ports_udp == ()
    assert config.available_logging_drivers == ("json-file", "none")
    assert config.engine_auth_type is None and dict(config.engine_auth) == {}
    assert config.container_stop_timeout == timedelta(seconds=30)
    assert config.container_start_timeout == timedelta(minutes=3)
    assert config.task_cleanup_wait == timedelta(hours=3)
    assert config.image_pull_behavior is ImagePullBehavior.DEFAULT
    assert config.image_pull_inactivity_timeout == timedelta(minutes=1)
    assert not config.image_cleanup_disabled
    assert config.image_cleanup_interval == timedelta(minutes=30)
    assert config.image_minimum_cleanup_age == timedelta(hours=1)
    assert config.num_images_delete_per_cycle == 5
    assert dict(config.instance_attributes) == {}
    assert not config.privileged_disabled and config.task_cpu_mem_limit
    assert not config.task_iam_role_enabled and not config.task_iam_role_network_host
    assert config.availability_zone is None
    assert config.instance_cpu is None and config.instance_memory is None
    assert config.unknown == () and config.warnings == ()


def test_the_study_page_heredoc(tmp_path: Path) -> None:
    """The private-registry example from the ECS developer guide, as written there."""
    path = write(
        tmp_path,
        "ECS_CLUSTER=MyCluster\n"
        "ECS_ENGINE_AUTH_TYPE=docker\n"
        'ECS_ENGINE_AUTH_DATA={"https://index.docker.io/v1/":{"username":"my_name",'
        '"password":"my_password","email":"email@example.com"}}\n'
        "ECS_LOGLEVEL=debug\n",
    )
    config = load_config(path, {})
    assert config.cluster == "MyCluster"
    assert config.log_level is LogLevel.DEBUG
    assert config.engine_auth_type == "docker"
    assert dict(config.engine_auth) == {"index.docker.io/v1/": ("my_name", "my_password")}
    assert credentials_for(config, "my_name/private:latest") == ("my_name", "my_password")


FILES = [
    pytest.param(
        "ECS_CLUSTER=default\nECS_CLUSTER=MyCluster\n", {"cluster": "MyCluster"}, id="echo-append"
    ),
    pytest.param(
        "# written by cloud-init\n\n  ECS_CLUSTER = MyCluster  \n#ECS_CLUSTER=Other\n",
        {"cluster": "MyCluster"},
        id="comments-blanks-spaces",
    ),
    pytest.param('ECS_CLUSTER="MyCluster"\n', {"cluster": "MyCluster"}, id="double-quoted"),
    pytest.param("ECS_CLUSTER='MyCluster'\n", {"cluster": "MyCluster"}, id="single-quoted"),
    pytest.param("ECS_CLUSTER=\n", {"cluster": "default"}, id="empty-means-unset"),
    pytest.param(
        "ECS_CLUSTER=MyCluster\r\nECS_LOGLEVEL=warn\r\n",
        {"cluster": "MyCluster", "log_level": LogLevel.WARN},
        id="crlf",
    ),
    pytest.param(
        'ECS_INSTANCE_ATTRIBUTES={"stack":"prod","team/unit":"a b@c:d"}\n',
        {"instance_attributes": {"stack": "prod", "team/unit": "a b@c:d"}},
        id="instance-attributes",
    ),
    pytest.param(
        "ECS_RESERVED_PORTS=[22, 8080]\nECS_RESERVED_PORTS_UDP=[53]\n",
        {"reserved_ports": (22, 8080), "reserved_ports_udp": (53,)},
        id="reserved-ports",
    ),
    pytest.param(
        "ECS_RESERVED_PORTS=[]\n",
        {"reserved_ports": (22, 2375, 2376, 51678, 51679)},
        id="empty-list-means-default",
    ),
    pytest.param(
        'ECS_AVAILABLE_LOGGING_DRIVERS=["json-file","syslog","awslogs","none"]\n',
        {"available_logging_drivers": ("json-file", "syslog", "awslogs", "none")},
        id="logging-drivers",
    ),
    pytest.param(
        "ECS_DISABLE_PRIVILEGED=TRUE\nECS_ENABLE_TASK_IAM_ROLE=True\n"
        "ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST=1\nECS_DISABLE_IMAGE_CLEANUP=t\n"
        "ECS_ENABLE_TASK_CPU_MEM_LIMIT=false\n",
        {
            "privileged_disabled": True,
            "task_iam_role_enabled": True,
            "task_iam_role_network_host": True,
            "image_cleanup_disabled": True,
            "task_cpu_mem_limit": False,
        },
        id="booleans-as-go-parses-them",
    ),
    pytest.param(
        "ECS_IMAGE_PULL_BEHAVIOR=prefer-cached\nECS_NUM_IMAGES_DELETE_PER_CYCLE=10\n"
        "ECS_RESERVED_MEMORY=256\nECS_DATADIR=/data\n",
        {
            "image_pull_behavior": ImagePullBehavior.PREFER_CACHED,
            "num_images_delete_per_cycle": 10,
            "reserved_memory": 256,
            "data_dir": Path("/data"),
        },
        id="pull-behavior-images-memory-datadir",
    ),
    pytest.param(
        "DOCKYARD_INSTANCE_CPU=512\nDOCKYARD_INSTANCE_MEMORY=1024\n"
        "DOCKYARD_AVAILABILITY_ZONE=lab-1a\n",
        {"instance_cpu": 512, "instance_memory": 1024, "availability_zone": "lab-1a"},
        id="dockyard-lab-options",
    ),
    pytest.param(
        "ECS_CLUSTER=arn:aws:ecs:us-east-1:000000000000:cluster/MyCluster\n",
        {"cluster": "arn:aws:ecs:us-east-1:000000000000:cluster/MyCluster"},
        id="cluster-arn",
    ),
]


@pytest.mark.parametrize(("text", "expected"), FILES)
def test_file(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    config = load_config(write(tmp_path, text), {})
    for name, value in expected.items():
        actual = getattr(config, name)
        assert (dict(actual) if name == "instance_attributes" else actual) == value, name


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "ECS_CLUSTER=FromFile\nECS_LOGLEVEL=debug\nECS_RESERVED_MEMORY=64\n")
    config = load_config(
        path, {"ECS_CLUSTER": "FromEnv", "ECS_LOGLEVEL": "", "PATH": "/bin", "HOME": "/root"}
    )
    assert config.cluster == "FromEnv"
    assert config.log_level is LogLevel.DEBUG  # an empty variable does not unset the file's
    assert config.reserved_memory == 64


def test_unknown_ecs_variables_are_listed_not_fatal(tmp_path: Path) -> None:
    path = write(tmp_path, "ECS_LOGFILE=/log/ecs-agent.log\nNO_PROXY=169.254.169.254\n")
    config = load_config(path, {"ECS_CHECKPOINT": "true", "ECS_CLUSTER": "c"})
    assert config.unknown == ("ECS_CHECKPOINT", "ECS_LOGFILE")


def test_lines_without_equals_are_skipped_with_a_warning(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "ECS_CLUSTER=c\nnot a setting\n"), {})
    assert config.cluster == "c"
    assert len(config.warnings) == 1 and ":2: skipped" in config.warnings[0]


def test_a_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "missing.config", {})


# Bad values stop the agent with the variable, the value and what is expected

BAD = [
    ("ECS_RESERVED_MEMORY", "lots", "expected a whole number of MiB"),
    ("ECS_RESERVED_MEMORY", "-1", "expected a whole number of MiB"),
    ("ECS_LOGLEVEL", "verbose", "expected one of debug, info, warn, error, crit"),
    ("ECS_CLUSTER", '"My Cluster"', "expected a cluster name"),
    ("ECS_RESERVED_PORTS", "22,80", "expected a JSON array of port numbers"),
    ("ECS_RESERVED_PORTS", "[22, 70000]", "expected a JSON array of port numbers"),
    ("ECS_RESERVED_PORTS_UDP", '["53"]', "expected a JSON array of port numbers"),
    ("ECS_AVAILABLE_LOGGING_DRIVERS", "json-file", "expected a JSON array of driver names"),
    ("ECS_AVAILABLE_LOGGING_DRIVERS", '["json-file","loki"]', "unknown logging driver 'loki'"),
    ("ECS_ENGINE_AUTH_TYPE", "basic", "expected one of docker, dockercfg"),
    ("ECS_CONTAINER_STOP_TIMEOUT", "30", "expected a Go duration such as 30s"),
    ("ECS_CONTAINER_START_TIMEOUT", "-3m", "expected a Go duration"),
    ("ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION", "1d", "expected a Go duration"),
    ("ECS_IMAGE_CLEANUP_INTERVAL", "soon", "expected a Go duration"),
    ("ECS_IMAGE_MINIMUM_CLEANUP_AGE", "1 h", "expected a Go duration"),
    ("ECS_IMAGE_PULL_INACTIVITY_TIMEOUT", "5", "expected a Go duration"),
    ("ECS_IMAGE_PULL_BEHAVIOR", "Always", "expected one of default, always, once, prefer-cached"),
    ("ECS_DISABLE_IMAGE_CLEANUP", "yes", "expected true or false"),
    ("ECS_DISABLE_PRIVILEGED", "on", "expected true or false"),
    ("ECS_ENABLE_TASK_IAM_ROLE", "enabled", "expected true or false"),
    ("ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST", "2", "expected true or false"),
    ("ECS_ENABLE_TASK_CPU_MEM_LIMIT", "maybe", "expected true or false"),
    ("ECS_NUM_IMAGES_DELETE_PER_CYCLE", "0", "expected a whole number of images, at least 1"),
    ("ECS_INSTANCE_ATTRIBUTES", "stack=prod", "expected a JSON object"),
    ("ECS_INSTANCE_ATTRIBUTES", '{"bad name":"x"}', "attribute name 'bad name'"),
    ("ECS_INSTANCE_ATTRIBUTES", '{"ecs.os-type":"x"}', "not starting with ecs."),
    ("ECS_INSTANCE_ATTRIBUTES", '{"stack":" prod"}', "attribute 'stack'"),
    ("ECS_INSTANCE_ATTRIBUTES", '{"stack":7}', "attribute 'stack'"),
    ("ECS_INSTANCE_ATTRIBUTES", json.dumps({f"a{i}": "v" for i in range(11)}), "at most 10"),
    ("DOCKYARD_INSTANCE_CPU", "0", "expected a whole number of CPU units, at least 1"),
    ("DOCKYARD_INSTANCE_MEMORY", "2GiB", "expected a whole number of MiB, at least 1"),
    ("DOCKYARD_AVAILABILITY_ZONE", "us east 1a!", "expected an availability zone name"),
]


@pytest.mark.parametrize(
    ("variable", "value", "expected"), [pytest.param(*case, id=case[0]) for case in BAD]
)
def test_a_bad_value_names_its_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env(**{variable: value})
    assert caught.value.variable == variable
    message = str(caught.value)
    assert message.startswith(f"{variable}={value!r}: "), message
    assert expected in message
    assert "(set in the environment)" in message


def test_a_bad_value_in_a_file_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "ECS_CLUSTER=c\nECS_RESERVED_MEMORY=lots\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert str(caught.value) == (
        f"ECS_RESERVED_MEMORY='lots': expected a whole number of MiB (set in {path}:2)"
    )


def test_reserved_memory_must_leave_room_in_a_declared_instance() -> None:
    with pytest.raises(ConfigError, match=r"ECS_RESERVED_MEMORY='512': must be less than"):
        from_env(ECS_RESERVED_MEMORY="512", DOCKYARD_INSTANCE_MEMORY="512")


def test_auth_data_errors_never_show_the_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        from_env(ECS_ENGINE_AUTH_TYPE="dockercfg", ECS_ENGINE_AUTH_DATA='{"r":{"auth":"s3cret"}}')
    message = str(caught.value)
    assert message.startswith("ECS_ENGINE_AUTH_DATA=<not shown>: registry 'r'")
    assert "s3cret" not in message


def test_auth_data_without_auth_type_is_refused() -> None:
    with pytest.raises(ConfigError, match="set without ECS_ENGINE_AUTH_TYPE"):
        from_env(ECS_ENGINE_AUTH_DATA=HUB_AUTH)


# Durations, as Go's time.ParseDuration reads them

DURATIONS = [
    ("30s", timedelta(seconds=30)),
    ("1m30s", timedelta(seconds=90)),
    ("3h", timedelta(hours=3)),
    ("2h45m", timedelta(hours=2, minutes=45)),
    ("1.5h", timedelta(minutes=90)),
    ("300ms", timedelta(milliseconds=300)),
    ("1s500ms", timedelta(milliseconds=1500)),
    ("1500us", timedelta(microseconds=1500)),
    ("1500µs", timedelta(microseconds=1500)),
    ("2000000ns", timedelta(milliseconds=2)),
    (".5m", timedelta(seconds=30)),
    ("0", timedelta(0)),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(*d, id=d[0]) for d in DURATIONS])
def test_go_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "1d", "-5s", "1h 30m", "m", "1.5.5s", "5S"])
def test_not_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="expected a Go duration"):
        parse_duration(text)


CLAMPS = [
    pytest.param(
        "ECS_CONTAINER_STOP_TIMEOUT",
        "500ms",
        "container_stop_timeout",
        timedelta(seconds=1),
        id="stop-timeout-raised-to-1s",
    ),
    pytest.param(
        "ECS_CONTAINER_START_TIMEOUT",
        "10s",
        "container_start_timeout",
        timedelta(seconds=45),
        id="start-timeout-raised-to-45s",
    ),
    pytest.param(
        "ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION",
        "30s",
        "task_cleanup_wait",
        timedelta(hours=3),
        id="cleanup-wait-below-1m-takes-default",
    ),
    pytest.param(
        "ECS_IMAGE_CLEANUP_INTERVAL",
        "5m",
        "image_cleanup_interval",
        timedelta(minutes=30),
        id="cleanup-interval-below-10m-takes-default",
    ),
    pytest.param(
        "ECS_IMAGE_PULL_INACTIVITY_TIMEOUT",
        "10s",
        "image_pull_inactivity_timeout",
        timedelta(minutes=1),
        id="pull-inactivity-below-1m-takes-default",
    ),
]


@pytest.mark.parametrize(("variable", "value", "field", "expected"), CLAMPS)
def test_below_the_agents_minimum(
    variable: str, value: str, field: str, expected: timedelta
) -> None:
    config = from_env(**{variable: value})
    assert getattr(config, field) == expected
    assert len(config.warnings) == 1 and config.warnings[0].startswith(f"{variable}={value}")


def test_durations_in_range_and_zero() -> None:
    config = from_env(
        ECS_CONTAINER_STOP_TIMEOUT="2m",
        ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION="10m",
        ECS_IMAGE_MINIMUM_CLEANUP_AGE="0",  # zero is "not set" to the agent
    )
    assert config.container_stop_timeout == timedelta(minutes=2)
    assert config.task_cleanup_wait == timedelta(minutes=10)
    assert config.image_minimum_cleanup_age == timedelta(hours=1)
    assert config.warnings == ()


# Registry credentials

DOCKERCFG = json.dumps(
    {
        "https://index.docker.io/v1/": {"auth": b64("hubuser:hubpass"), "email": "e@x.org"},
        "registry.example.com:5000": {"auth": b64("team:pa:ss"), "email": "e@x.org"},
    }
)


def test_dockercfg_auth_is_decoded() -> None:
    config = from_env(ECS_ENGINE_AUTH_TYPE="dockercfg", ECS_ENGINE_AUTH_DATA=DOCKERCFG)
    assert dict(config.engine_auth) == {
        "index.docker.io/v1/": ("hubuser", "hubpass"),
        "registry.example.com:5000": ("team", "pa:ss"),  # split at the first colon only
    }


def test_dockercfg_accepts_the_config_json_auths_wrapper() -> None:
    wrapped = json.dumps({"auths": {"127.0.0.1:5000": {"auth": b64("AWS:token")}}})
    config = from_env(ECS_ENGINE_AUTH_TYPE="dockercfg", ECS_ENGINE_AUTH_DATA=wrapped)
    assert credentials_for(config, "127.0.0.1:5000/demo") == ("AWS", "token")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("not json", id="not-json"),
        pytest.param('["r"]', id="not-an-object"),
        pytest.param('{"r":{"auth":"%%%"}}', id="not-base64"),
        pytest.param('{"r":{"auth":"' + b64("nocolon") + '"}}', id="no-colon"),
        pytest.param('{"r":{"email":"e"}}', id="no-auth"),
    ],
)
def test_bad_dockercfg_data(data: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env(ECS_ENGINE_AUTH_TYPE="dockercfg", ECS_ENGINE_AUTH_DATA=data)
    assert caught.value.variable == "ECS_ENGINE_AUTH_DATA"


def test_docker_auth_needs_username_and_password() -> None:
    with pytest.raises(ConfigError, match='expected "username" and "password"'):
        from_env(ECS_ENGINE_AUTH_TYPE="docker", ECS_ENGINE_AUTH_DATA='{"r":{"username":"u"}}')


REGISTRY = "registry.example.com:5000"
AUTH = json.dumps(
    {
        "https://index.docker.io/v1/": {"username": "hub", "password": "h"},
        "127.0.0.1:5000": {"username": "AWS", "password": "token"},
        REGISTRY: {"username": "host", "password": "1"},
        f"{REGISTRY}/ns": {"username": "namespace", "password": "2"},
        "other.example.com/v1/": {"username": "legacy", "password": "3"},
    }
)
DIGEST = "sha256:" + "a" * 64
IMAGES = [
    ("docker.io/library/x", "hub"),
    ("nginx", "hub"),
    ("nginx:1.25", "hub"),
    ("library/nginx@" + DIGEST, "hub"),
    ("index.docker.io/someone/app:v1", "hub"),
    ("127.0.0.1:5000/demo:latest", "AWS"),
    ("127.0.0.1:5000/team/demo", "AWS"),
    (f"{REGISTRY}/ns/name@{DIGEST}", "namespace"),
    (f"{REGISTRY}/ns/name:tag", "namespace"),
    (f"{REGISTRY}/nsx/name", "host"),  # "ns" is a path prefix, not a string prefix
    (f"{REGISTRY}/other/name@{DIGEST}", "host"),
    ("other.example.com/app", "legacy"),  # a key for the host, whatever its path
    ("unknown.example.com/app", None),
    ("localhost/app", None),
    ("127.0.0.1:5001/demo", None),
]


@pytest.mark.parametrize(("image", "user"), [pytest.param(*i, id=i[0]) for i in IMAGES])
def test_credentials_for_image(image: str, user: str | None) -> None:
    config = from_env(ECS_ENGINE_AUTH_TYPE="docker", ECS_ENGINE_AUTH_DATA=AUTH)
    found = credentials_for(config, image)
    assert (found.username if found else None) == user


def test_no_auth_configured_means_anonymous_pulls() -> None:
    assert credentials_for(from_env(), "nginx") is None


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("nginx", ("docker.io", "nginx")),
        ("localhost/app:1", ("localhost", "app")),
        ("Registry.Example.com/a/b:c", ("registry.example.com", "a/b")),
        (f"127.0.0.1:5000/demo@{DIGEST}", ("127.0.0.1:5000", "demo")),
    ],
)
def test_split_image(image: str, expected: tuple[str, str]) -> None:
    assert split_image(image) == expected


def test_passwords_stay_out_of_reprs() -> None:
    config = from_env(ECS_ENGINE_AUTH_TYPE="docker", ECS_ENGINE_AUTH_DATA=HUB_AUTH)
    assert "my_password" not in repr(config)
    assert "my_password" not in repr(credentials_for(config, "nginx"))


def test_attribute_rules_match_the_servers() -> None:
    from dockyard.ecs import shapes

    assert config_module.ATTRIBUTE_NAME.pattern == shapes.ATTRIBUTE_NAME.pattern
    assert config_module.ATTRIBUTE_VALUE.pattern == shapes.ATTRIBUTE_VALUE.pattern


def test_log_levels_map_to_python_logging() -> None:
    import logging

    assert LogLevel.WARN.logging_level == logging.WARNING
    assert LogLevel.CRIT.logging_level == logging.CRITICAL
    assert LogLevel.DEBUG.logging_level == logging.DEBUG
