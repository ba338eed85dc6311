"""Account settings: a principal's opt-ins, the account default, and AWS's defaults.

Where the value of a setting comes from, most specific first:

1. the principal's own setting (PutAccountSetting, for the caller or ``principalArn``);
2. the account default, stored under the root principal ``arn:aws:iam::ACCOUNT:root``
   (PutAccountSettingDefault, or PutAccountSetting with the root ARN);
3. AWS's default for a new account, the ``SETTINGS`` table below.

ListAccountSettings with ``effectiveSettings`` resolves every setting name that way and
reports where the value came from in ``principalArn`` (the root ARN for 2 and 3).
Settings are per account and region, as in ECS.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from dockyard.api.awsjson import Params
from dockyard.api.context import RequestContext
from dockyard.api.errors import AccessDeniedException, InvalidParameterException
from dockyard.api.pagination import decode_token, encode_token, page_size
from dockyard.ecs import shapes
from dockyard.ecs.registry import ECS
from dockyard.store.models import AccountSetting


class Rule(NamedTuple):
    values: tuple[str, ...]  # the values ECS accepts
    default: str  # AWS's value for a new account
    type: str = "user"  # aws_managed: read-only, AWS sets it on the account's behalf
    root_only: bool = False  # only the account default may be set


_ENABLED = ("enabled", "disabled")

# name -> accepted values, AWS's default for a new account (ECS developer guide,
# "Account settings"; defaultLogDriverMode became non-blocking on 25 June 2025).
SETTINGS: dict[str, Rule] = {
    "serviceLongArnFormat": Rule(_ENABLED, "enabled"),
    "taskLongArnFormat": Rule(_ENABLED, "enabled"),
    "containerInstanceLongArnFormat": Rule(_ENABLED, "enabled"),
    "awsvpcTrunking": Rule(_ENABLED, "disabled"),
    "containerInsights": Rule(("enabled", "disabled", "enhanced"), "disabled"),
    "fargateFIPSMode": Rule(_ENABLED, "disabled"),
    "tagResourceAuthorization": Rule(("on", "off"), "on"),
    "fargateTaskRetirementWaitPeriod": Rule(("0", "7", "14"), "7", root_only=True),
    "guardDutyActivate": Rule(("on", "off"), "off", type="aws_managed"),
    "defaultLogDriverMode": Rule(("blocking", "non-blocking"), "non-blocking"),
    "fargateEventWindows": Rule(_ENABLED, "disabled"),
}

_PRINCIPAL = re.compile(r"arn:aws:iam::(?P<account>\d{12}):(?:root|(?:user|role)/[\w+=,.@/-]+)")


def root_principal(ctx: RequestContext) -> str:
    return f"arn:aws:iam::{ctx.account_id}:root"


def _principal(ctx: RequestContext, given: str | None) -> str:
    """The principal a request is about: the caller, or ``principalArn`` when the caller
    is that principal or an admin (ECS: "you must be the root user, or the principal")."""
    if given is None:
        return ctx.principal_arn
    match = _PRINCIPAL.fullmatch(given)
    if match is None or match["account"] != ctx.account_id:
        raise InvalidParameterException(
            f"principalArn {given!r} must be the root user, a user or a role of account "
            f"{ctx.account_id}: arn:aws:iam::{ctx.account_id}:root|user/NAME|role/NAME."
        )
    if given != ctx.principal_arn and not ctx.identity.admin:
        raise AccessDeniedException(
            f"{ctx.principal_arn} may not change or read the account settings of {given}."
        )
    return given


def _checked(ctx: RequestContext, name: str, principal: str, value: str | None) -> Rule:
    """The setting's rule, after refusing what ECS refuses for it."""
    rule = SETTINGS[name]
    if rule.type == "aws_managed":
        raise InvalidParameterException(
            f"{name} is managed by AWS on the account's behalf and is read-only."
        )
    if rule.root_only and principal != root_principal(ctx):
        raise InvalidParameterException(
            f"{name} can only be set for the root user: use PutAccountSettingDefault."
        )
    if value is not None and value not in rule.values:
        raise InvalidParameterException(
            f"{value!r} is not a valid value for {name}; use one of {', '.join(rule.values)}."
        )
    return rule


def _put(ctx: RequestContext, name: str, value: str, principal: str) -> Params:
    _checked(ctx, name, principal, value)
    setting = AccountSetting(name=name, value=value, principal_arn=principal)
    ctx.store.put_account_setting(ctx.account_id, ctx.region, setting)
    return {"setting": shapes.setting_to_wire(setting)}


@ECS.operation("PutAccountSetting")
def put_account_setting(ctx: RequestContext, params: Params) -> Params:
    principal = _principal(ctx, params.get("principalArn"))
    return _put(ctx, params["name"], params["value"], principal)


@ECS.operation("PutAccountSettingDefault")
def put_account_setting_default(ctx: RequestContext, params: Params) -> Params:
    return _put(ctx, params["name"], params["value"], root_principal(ctx))


@ECS.operation("DeleteAccountSetting")
def delete_account_setting(ctx: RequestContext, params: Params) -> Params:
    """Forget the principal's own value. Idempotent: the answer carries the value that
    was deleted, or, when there was none, the value now in force for the principal."""
    name = params["name"]
    principal = _principal(ctx, params.get("principalArn"))
    _checked(ctx, name, principal, None)
    stored = _stored(ctx)
    deleted = stored.get((principal, name))
    ctx.store.delete_account_setting(ctx.account_id, ctx.region, principal, name)
    if deleted is None:
        stored.pop((principal, name), None)
        deleted = _effective(ctx, name, principal, stored)
    return {"setting": shapes.setting_to_wire(deleted)}


@ECS.operation("ListAccountSettings")
def list_account_settings(ctx: RequestContext, params: Params) -> Params:
    name, value = params.get("name"), params.get("value")
    if value is not None and name is None:
        raise InvalidParameterException("To filter by value, name the setting as well.")
    principal = _principal(ctx, params.get("principalArn"))
    stored = _stored(ctx)
    if params.get("effectiveSettings"):
        settings = [_effective(ctx, n, principal, stored) for n in SETTINGS]
    else:
        settings = [s for (p, _), s in stored.items() if p == principal]
    settings = [
        s
        for s in sorted(settings, key=lambda s: s.name)
        if (name is None or s.name == name) and (value is None or s.value == value)
    ]
    after = decode_token(params.get("nextToken"))
    if after is not None:
        settings = [s for s in settings if s.name > after]
    limit = page_size(params.get("maxResults"), default=10, ceiling=10)
    result: Params = {"settings": [shapes.setting_to_wire(s) for s in settings[:limit]]}
    if len(settings) > limit:
        result["nextToken"] = encode_token(settings[limit - 1].name)
    return result


def _stored(ctx: RequestContext) -> dict[tuple[str, str], AccountSetting]:
    """Every setting stored in the account and region, by (principal, name)."""
    settings = ctx.store.list_account_settings(ctx.account_id, ctx.region)
    return {(s.principal_arn, s.name): s for s in settings}


def _effective(
    ctx: RequestContext, name: str, principal: str, stored: dict[tuple[str, str], AccountSetting]
) -> AccountSetting:
    root = root_principal(ctx)
    rule = SETTINGS[name]
    if rule.type == "aws_managed":
        return AccountSetting(name, rule.default, root, rule.type)
    own = stored.get((principal, name)) or stored.get((root, name))
    return own or AccountSetting(name, rule.default, root)
