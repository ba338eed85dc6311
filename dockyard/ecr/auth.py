"""GetAuthorizationToken: the password ``docker login`` uses against our registry.

``authorizationToken`` is ``base64("AWS:" + token)`` as ECR's is, so ``aws ecr
get-login`` and ``get-login-password`` (which split it at the colon) work unchanged.
The token names the caller's identity, account and region and lasts 12 hours; the
/v2/ routes verify it (``dockyard/registry/auth.py``).
"""

from __future__ import annotations

import base64

from dockyard.api.awsjson import Params
from dockyard.api.context import RequestContext
from dockyard.api.errors import InvalidParameterException
from dockyard.ecr.registry import ECR
from dockyard.registry.auth import RegistryCaller


def registry_token(ctx: RequestContext) -> tuple[str, float]:
    """A registry token for the caller, and when it expires (epoch seconds)."""
    caller = RegistryCaller(ctx.identity, ctx.account_id, ctx.region)
    return ctx.registry.tokens.issue(caller, ctx.now)


@ECR.operation("GetAuthorizationToken")
def get_authorization_token(ctx: RequestContext, params: Params) -> Params:
    """One entry per requested registry (default: the caller's own); every entry points
    at the one registry this server serves."""
    registry_ids = params.get("registryIds") or [ctx.account_id]
    for registry_id in registry_ids:
        if registry_id != ctx.account_id:
            raise InvalidParameterException(
                f"Invalid parameter at 'registryIds': registry '{registry_id}' is not served "
                f"here; this server holds only registry '{ctx.account_id}'."
            )
    token, expires_at = registry_token(ctx)
    data = {
        "authorizationToken": base64.b64encode(f"AWS:{token}".encode()).decode(),
        "expiresAt": expires_at,
        "proxyEndpoint": f"http://{ctx.registry.address}",
    }
    return {"authorizationData": [dict(data) for _ in dict.fromkeys(registry_ids)]}
