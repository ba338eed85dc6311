"""GetAuthorizationToken, and the classic and modern AWS CLI v1 login commands."""

from __future__ import annotations

import base64
import shlex
import time
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.live import LiveServer

TWELVE_HOURS = 12 * 3600


@pytest.fixture
def ecr(server: LiveServer) -> Any:
    server.reset()
    return server.client("ecr")


def test_token_is_base64_of_aws_and_a_password_for_12_hours(ecr: Any, server: LiveServer) -> None:
    (data,) = ecr.get_authorization_token()["authorizationData"]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    assert user == "AWS"
    assert password and ":" not in password  # the CLI splits the token at its one colon
    assert data["proxyEndpoint"] == f"http://127.0.0.1:{server.port}"
    lifetime = data["expiresAt"].timestamp() - time.time()
    assert TWELVE_HOURS - 120 < lifetime <= TWELVE_HOURS + 5


def test_token_authenticates_the_registry_with_basic_auth(ecr: Any, server: LiveServer) -> None:
    (data,) = ecr.get_authorization_token()["authorizationData"]
    response = httpx.get(
        f"{server.endpoint}/v2/",
        headers={"Authorization": "Basic " + data["authorizationToken"]},
    )
    assert response.status_code == 200, response.text
    wrong = base64.b64encode(b"AWS:not-a-token").decode()
    refused = httpx.get(f"{server.endpoint}/v2/", headers={"Authorization": "Basic " + wrong})
    assert refused.status_code == 401


def test_registry_ids_give_one_entry_each_and_other_accounts_are_refused(ecr: Any) -> None:
    data = ecr.get_authorization_token(registryIds=["000000000000"])["authorizationData"]
    assert len(data) == 1
    with pytest.raises(ClientError) as excinfo:
        ecr.get_authorization_token(registryIds=["123456789012"])
    assert excinfo.value.response["Error"]["Code"] == "InvalidParameterException"


def test_aws_cli_v1_get_login_prints_a_docker_login_command(server: LiveServer) -> None:
    result = server.aws("ecr", "get-login", "--no-include-email")
    assert result.returncode == 0, result.stderr
    words = shlex.split(result.stdout.strip())
    assert words[:5] == ["docker", "login", "-u", "AWS", "-p"]
    assert words[6:] == [f"http://127.0.0.1:{server.port}"]
    password = words[5]
    login = base64.b64encode(f"AWS:{password}".encode()).decode()
    response = httpx.get(f"{server.endpoint}/v2/", headers={"Authorization": "Basic " + login})
    assert response.status_code == 200, response.text

    with_email = server.aws("ecr", "get-login")
    assert with_email.returncode == 0, with_email.stderr
    assert shlex.split(with_email.stdout)[6:8] == ["-e", "none"]


def test_aws_cli_v1_get_login_password_prints_the_password(server: LiveServer) -> None:
    result = server.aws("ecr", "get-login-password")
    assert result.returncode == 0, result.stderr
    password = result.stdout.strip()
    assert password and " " not in password
    login = base64.b64encode(f"AWS:{password}".encode()).decode()
    response = httpx.get(f"{server.endpoint}/v2/", headers={"Authorization": "Basic " + login})
    assert response.status_code == 200, response.text
