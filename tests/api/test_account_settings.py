"""Account settings: a user's own value, the account default, and AWS's defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.live import LiveServer

ACCOUNT = "000000000000"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:role/bob"

# What a new account answers with effectiveSettings=true.
AWS_DEFAULTS = {
    "awsvpcTrunking": "disabled",
    "containerInsights": "disabled",
    "containerInstanceLongArnFormat": "enabled",
    "defaultLogDriverMode": "non-blocking",
    "fargateEventWindows": "disabled",
    "fargateFIPSMode": "disabled",
    "fargateTaskRetirementWaitPeriod": "7",
    "guardDutyActivate": "off",
    "serviceLongArnFormat": "enabled",
    "tagResourceAuthorization": "on",
    "taskLongArnFormat": "enabled",
}


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def listed(ecs: Any, **params: Any) -> list[dict[str, str]]:
    """Every page of ListAccountSettings."""
    settings: list[dict[str, str]] = []
    token: dict[str, str] = {}
    while True:
        page = ecs.list_account_settings(**params, **token)
        settings += page["settings"]
        if "nextToken" not in page:
            return settings
        token = {"nextToken": page["nextToken"]}


def effective(ecs: Any, principal: str = ROOT) -> dict[str, tuple[str, str]]:
    """name -> (value, where it comes from)."""
    settings = listed(ecs, effectiveSettings=True, principalArn=principal)
    return {s["name"]: (s["value"], s["principalArn"]) for s in settings}


def everything(ecs: Any) -> tuple[Any, ...]:
    """All stored and effective state this module can change, to compare before/after."""
    return tuple((listed(ecs, principalArn=p), effective(ecs, p)) for p in (ROOT, ALICE, BOB))


def test_a_new_account_has_aws_defaults_and_no_explicit_settings(ecs: Any) -> None:
    assert listed(ecs) == []
    first = ecs.list_account_settings(effectiveSettings=True)
    assert len(first["settings"]) == 10  # pages of at most 10 by default
    assert "nextToken" in first
    settings = listed(ecs, effectiveSettings=True)
    assert {s["name"]: s["value"] for s in settings} == AWS_DEFAULTS
    assert {s["principalArn"] for s in settings} == {ROOT}
    types = {s["name"]: s["type"] for s in settings}
    assert types.pop("guardDutyActivate") == "aws_managed"
    assert set(types.values()) == {"user"}


def test_user_setting_overrides_account_default_story(ecs: Any) -> None:
    # The account default (stored under root) applies to everyone without their own.
    put = ecs.put_account_setting_default(name="containerInsights", value="enhanced")
    assert put["setting"] == {
        "name": "containerInsights",
        "value": "enhanced",
        "principalArn": ROOT,
        "type": "user",
    }
    assert effective(ecs, ALICE)["containerInsights"] == ("enhanced", ROOT)

    # Alice opts out for herself; Bob still follows the default.
    own = ecs.put_account_setting(name="containerInsights", value="disabled", principalArn=ALICE)
    assert own["setting"]["principalArn"] == ALICE
    assert effective(ecs, ALICE)["containerInsights"] == ("disabled", ALICE)
    assert effective(ecs, BOB)["containerInsights"] == ("enhanced", ROOT)

    # Without effectiveSettings only the principal's own settings are listed.
    assert [s["name"] for s in listed(ecs, principalArn=ALICE)] == ["containerInsights"]
    assert [s["principalArn"] for s in listed(ecs)] == [ROOT]  # the caller is root

    # Filters: by name, by name and value.
    assert listed(ecs, principalArn=ALICE, name="awsvpcTrunking") == []
    hits = listed(ecs, effectiveSettings=True, principalArn=BOB, name="containerInsights")
    assert [(s["value"], s["principalArn"]) for s in hits] == [("enhanced", ROOT)]
    assert listed(ecs, effectiveSettings=True, name="containerInsights", value="enabled") == []

    # Deleting Alice's setting puts her back on the account default.
    deleted = ecs.delete_account_setting(name="containerInsights", principalArn=ALICE)
    assert deleted["setting"]["value"] == "disabled"
    assert effective(ecs, ALICE)["containerInsights"] == ("enhanced", ROOT)

    # Deleting the account default puts everyone back on AWS's default.
    ecs.delete_account_setting(name="containerInsights")
    assert effective(ecs, BOB)["containerInsights"] == ("disabled", ROOT)
    assert listed(ecs) == []


def test_deleting_what_is_not_set_answers_the_value_in_force(ecs: Any) -> None:
    ecs.put_account_setting_default(name="awsvpcTrunking", value="enabled")
    deleted = ecs.delete_account_setting(name="awsvpcTrunking", principalArn=ALICE)
    assert deleted["setting"]["value"] == "enabled"
    assert deleted["setting"]["principalArn"] == ROOT
    assert effective(ecs, ALICE)["awsvpcTrunking"] == ("enabled", ROOT)


VALUES = [
    ("serviceLongArnFormat", "disabled", True),
    ("serviceLongArnFormat", "enhanced", False),
    ("awsvpcTrunking", "enabled", True),
    ("awsvpcTrunking", "on", False),
    ("containerInsights", "enhanced", True),
    ("containerInsights", "sometimes", False),
    ("fargateFIPSMode", "enabled", True),
    ("tagResourceAuthorization", "off", True),
    ("tagResourceAuthorization", "disabled", False),
    ("defaultLogDriverMode", "blocking", True),
    ("defaultLogDriverMode", "enabled", False),
    ("fargateEventWindows", "enabled", True),
    ("fargateTaskRetirementWaitPeriod", "14", True),
    ("fargateTaskRetirementWaitPeriod", "3", False),
    ("guardDutyActivate", "on", False),  # read-only: AWS manages it
]


@pytest.mark.parametrize(
    ("name", "value", "accepted"), VALUES, ids=[f"{n}={v}" for n, v, _ in VALUES]
)
def test_setting_values(ecs: Any, name: str, value: str, accepted: bool) -> None:
    before = everything(ecs)
    if accepted:
        ecs.put_account_setting_default(name=name, value=value)
        assert effective(ecs, ALICE)[name] == (value, ROOT)
        return
    for call in (ecs.put_account_setting_default, ecs.put_account_setting):
        with pytest.raises(ClientError) as excinfo:
            call(name=name, value=value)
        assert error_code(excinfo) == "InvalidParameterException"
    assert everything(ecs) == before


REFUSED = [
    (
        "wait-period-for-a-user",
        "put_account_setting",
        {"name": "fargateTaskRetirementWaitPeriod", "value": "0", "principalArn": ALICE},
    ),
    (
        "principal-of-another-account",
        "put_account_setting",
        {"name": "awsvpcTrunking", "value": "enabled", "principalArn": "arn:aws:iam::1:root"},
    ),
    (
        "principal-not-iam",
        "put_account_setting",
        {"name": "awsvpcTrunking", "value": "enabled", "principalArn": "alice"},
    ),
    ("delete-guard-duty", "delete_account_setting", {"name": "guardDutyActivate"}),
    ("value-without-name", "list_account_settings", {"value": "enabled"}),
    ("max-results-over-10", "list_account_settings", {"maxResults": 11}),
    ("bad-token", "list_account_settings", {"nextToken": "not-ours"}),
]


@pytest.mark.parametrize(
    ("operation", "params"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_refused_requests_change_nothing(ecs: Any, operation: str, params: Any) -> None:
    ecs.put_account_setting(name="awsvpcTrunking", value="disabled", principalArn=ALICE)
    before = everything(ecs)
    with pytest.raises(ClientError) as excinfo:
        getattr(ecs, operation)(**params)
    assert error_code(excinfo) == "InvalidParameterException"
    assert everything(ecs) == before


def test_wait_period_can_be_set_for_the_root_user(ecs: Any) -> None:
    setting = ecs.put_account_setting(
        name="fargateTaskRetirementWaitPeriod", value="0", principalArn=ROOT
    )["setting"]
    assert (setting["value"], setting["principalArn"]) == ("0", ROOT)
    assert effective(ecs, BOB)["fargateTaskRetirementWaitPeriod"] == ("0", ROOT)


def test_settings_are_per_region(server: LiveServer, ecs: Any) -> None:
    ecs.put_account_setting_default(name="containerInsights", value="enabled")
    elsewhere = server.client("ecs", region="us-east-1")
    assert listed(elsewhere) == []
    assert effective(elsewhere)["containerInsights"] == ("disabled", ROOT)


def test_a_non_admin_manages_only_their_own_settings(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data", None, "--identity", "AKALICE:alice-secret:alice:user")
    server.start()
    try:
        alice = server.client("ecs", key="AKALICE", secret="alice-secret")
        own = alice.put_account_setting(name="awsvpcTrunking", value="enabled")["setting"]
        assert own["principalArn"] == ALICE
        assert effective(alice, ALICE)["awsvpcTrunking"] == ("enabled", ALICE)
        with pytest.raises(ClientError) as excinfo:
            alice.put_account_setting(name="awsvpcTrunking", value="enabled", principalArn=BOB)
        assert error_code(excinfo) == "AccessDeniedException"
        with pytest.raises(ClientError) as excinfo:
            alice.list_account_settings(principalArn=BOB)
        assert error_code(excinfo) == "AccessDeniedException"
        assert listed(server.client("ecs"), principalArn=BOB) == []
    finally:
        server.stop()


def test_aws_cli_put_default_and_list_effective(server: LiveServer, ecs: Any) -> None:
    put = server.aws(
        "ecs", "put-account-setting-default", "--name", "containerInsights", "--value", "enhanced"
    )
    assert put.returncode == 0, put.stderr
    assert json.loads(put.stdout)["setting"]["principalArn"] == ROOT
    # The CLI follows nextToken itself: all 11 settings come back in one answer.
    listing = server.aws("ecs", "list-account-settings", "--effective-settings")
    assert listing.returncode == 0, listing.stderr
    settings = {s["name"]: s["value"] for s in json.loads(listing.stdout)["settings"]}
    assert settings == {**AWS_DEFAULTS, "containerInsights": "enhanced"}
    bad = server.aws("ecs", "put-account-setting", "--name", "containerInsights", "--value", "x")
    assert bad.returncode != 0
    assert "InvalidParameterException" in bad.stderr
