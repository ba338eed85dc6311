"""The agent's half of the wire: SigV4-signed JSON requests to the Dockyard server.

Every call is signed like any AWS client's (botocore's ``SigV4Auth``), with the
credentials in ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (default ``test`` /
``test``, the server's built-in admin) and the region in ``AWS_REGION`` or
``AWS_DEFAULT_REGION`` (default ``us-east-1``). The region matters: clusters, ARNs and
registry tokens belong to one region, so an agent joins the cluster of that name in its
region and pulls from that region's registry.

Reports carry ``X-Dockyard-Container-Instance`` inside the signature (the server trusts
only a signed one), which boto3 will not add, and carry ``stopCode`` and container
``healthStatus``, which botocore's model would reject; so this client speaks AWS JSON 1.1
itself, with httpx, for every call.

``ChannelError.retryable`` tells the caller whether to try again with ``Backoff``
(the server is unreachable, overloaded or failing) or to give up on the request (the
server understood it and said no).
"""

from __future__ import annotations

import base64
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from dockyard.agent.assignment import TaskReport
from dockyard.agent.runtime import RegistryAuth

log = logging.getLogger(__name__)

ECS_TARGET: Final = "AmazonEC2ContainerServiceV20141113"
ECR_TARGET: Final = "AmazonEC2ContainerRegistry_V20150921"
POLL_PATH: Final = "/_dockyard/agent/poll"
INSTANCE_HEADER: Final = "X-Dockyard-Container-Instance"
DEFAULT_REGION: Final = "us-east-1"
_CONTENT_TYPE: Final = "application/x-amz-json-1.1"
_THROTTLED: Final = frozenset({"ThrottlingException", "ServerException", "ServiceUnavailable"})
_TIMEOUT: Final = 15.0  # seconds for a plain call; a poll adds its wait


class ChannelError(Exception):
    """A call that failed. ``code`` is the AWS error type when the server answered."""

    def __init__(self, message: str, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status

    @property
    def retryable(self) -> bool:
        """No answer, a server-side failure or throttling: worth another try."""
        return self.status is None or self.status >= 500 or self.code in _THROTTLED


@dataclass(frozen=True)
class PollAnswer:
    version: int
    tasks: tuple[Any, ...]  # Assignment wire documents, parsed one by one by the caller
    heartbeat_seconds: float
    instance_status: str  # ACTIVE | DRAINING | INACTIVE


@dataclass(frozen=True)
class RegistryToken:
    auth: RegistryAuth  # for the registry at auth.server
    expires_at: float  # epoch seconds


class Backoff:
    """Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... up to ``cap``, each delay
    drawn from its upper half, so agents that lost the server together do not all
    come back in the same instant."""

    def __init__(
        self, base: float = 0.5, cap: float = 30.0, rng: Callable[[], float] = random.random
    ) -> None:
        self._base, self._cap, self._rng = base, cap, rng
        self._attempts = 0

    def next(self) -> float:
        delay = min(self._cap, self._base * 2**self._attempts)
        self._attempts = min(self._attempts + 1, 32)
        return float(delay * (0.5 + self._rng() / 2))

    def reset(self) -> None:
        self._attempts = 0


def credentials_from(environ: Mapping[str, str]) -> tuple[Credentials, str]:
    """The credentials and region an agent signs with, from its environment."""
    credentials = Credentials(
        environ.get("AWS_ACCESS_KEY_ID") or "test",
        environ.get("AWS_SECRET_ACCESS_KEY") or "test",
        environ.get("AWS_SESSION_TOKEN") or None,
    )
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    return credentials, region


class AgentClient:
    """The calls ``dockyard agent`` makes. Safe to share between asyncio tasks."""

    def __init__(
        self,
        server_url: str,
        credentials: Credentials,
        region: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.region = region
        self._credentials = credentials
        self._http = httpx.AsyncClient(transport=transport, timeout=_TIMEOUT)

    @classmethod
    def from_environ(cls, server_url: str, environ: Mapping[str, str]) -> AgentClient:
        credentials, region = credentials_from(environ)
        return cls(server_url, credentials, region)

    async def register(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """RegisterContainerInstance; returns the ``containerInstance``."""
        answer = await self.call("ecs", "RegisterContainerInstance", params)
        instance: dict[str, Any] = answer["containerInstance"]
        return instance

    async def create_cluster(self, name: str) -> None:
        await self.call("ecs", "CreateCluster", {"clusterName": name})

    async def poll(
        self, cluster: str, instance_arn: str, known_version: int | None, wait: float
    ) -> PollAnswer:
        """The long poll: answered at once when the server's version differs from
        ``known_version`` (or that is None), else on a change or after ``wait`` seconds."""
        body = {
            "cluster": cluster,
            "containerInstanceArn": instance_arn,
            "waitSeconds": wait,
            "knownVersion": known_version,
        }
        answer = await self._post(POLL_PATH, "ecs", body, {}, timeout=wait + _TIMEOUT)
        try:
            return PollAnswer(
                version=int(answer["version"]),
                tasks=tuple(answer.get("tasks") or ()),
                heartbeat_seconds=float(answer.get("heartbeatSeconds") or wait),
                instance_status=str(answer.get("containerInstanceStatus") or "ACTIVE"),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ChannelError(f"malformed poll answer: {error!r}", status=200) from None

    async def submit_task(self, report: TaskReport, instance_arn: str) -> None:
        """SubmitTaskStateChange, speaking for ``instance_arn``."""
        await self.call("ecs", "SubmitTaskStateChange", report.to_wire(), instance=instance_arn)

    async def get_registry_auth(self) -> RegistryToken:
        """An ECR token for the server's registry, for this agent's account and region."""
        answer = await self.call("ecr", "GetAuthorizationToken", {})
        try:
            data = answer["authorizationData"][0]
            user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
            server = urlsplit(data["proxyEndpoint"]).netloc
            expires = float(data.get("expiresAt") or time.time() + 3600)
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise ChannelError(
                f"malformed GetAuthorizationToken answer: {error!r}", status=200
            ) from None
        return RegistryToken(RegistryAuth(user, password, server), expires)

    async def call(
        self,
        service: str,
        operation: str,
        params: Mapping[str, Any],
        *,
        instance: str | None = None,
    ) -> dict[str, Any]:
        """One AWS JSON 1.1 operation of ``service`` ("ecs" or "ecr")."""
        target = ECS_TARGET if service == "ecs" else ECR_TARGET
        headers = {"X-Amz-Target": f"{target}.{operation}"}
        if instance is not None:
            headers[INSTANCE_HEADER] = instance
        return await self._post("/", service, params, headers)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(
        self,
        path: str,
        service: str,
        params: Mapping[str, Any],
        extra: Mapping[str, str],
        *,
        timeout: float = _TIMEOUT,
    ) -> dict[str, Any]:
        url = self.server_url + path
        body = orjson.dumps(params)
        request = AWSRequest(
            method="POST", url=url, data=body, headers={"Content-Type": _CONTENT_TYPE, **extra}
        )
        # Signed at send time: a retried request gets a fresh date.
        SigV4Auth(self._credentials, service, self.region).add_auth(request)
        try:
            response = await self._http.post(
                url, content=body, headers=dict(request.headers.items()), timeout=timeout
            )
        except httpx.HTTPError as error:
            raise ChannelError(f"{url}: {type(error).__name__}: {error}") from None
        if response.status_code == 200:
            try:
                answer = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                answer = None
            if not isinstance(answer, dict):
                raise ChannelError(f"{url}: the answer is not a JSON object", status=200)
            return answer
        raise _error(response)


def _error(response: httpx.Response) -> ChannelError:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        return ChannelError(
            f"HTTP {response.status_code}: {response.text[:200]}", status=response.status_code
        )
    code = str(body.get("__type") or "").rpartition("#")[2] or None
    message = body.get("message") or body.get("Message") or response.reason_phrase
    return ChannelError(f"{code}: {message}", code=code, status=response.status_code)
