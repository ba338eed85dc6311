"""The one ASGI app: AWS JSON APIs on ``POST /``, health, and admin endpoints."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from dockyard import background
from dockyard.api import awsjson
from dockyard.api.agent_hub import AgentHub
from dockyard.api.context import RequestContext
from dockyard.api.errors import AccessDeniedException, AwsError, ServerException
from dockyard.api.identity import Identities
from dockyard.api.sigv4 import Caller, SignedRequest, verify
from dockyard.config import ServerConfig
from dockyard.control.hub import ControlHub
from dockyard.control.loop import ServiceLoop
from dockyard.ecr import ECR
from dockyard.ecr.lifecycle_api import apply_to_repository
from dockyard.ecs import ECS, agent_channel, task_placement
from dockyard.ecs.task_reports import CALLER_HEADER
from dockyard.registry.auth import Tokens, load_or_create_key
from dockyard.registry.routes import routes as registry_routes
from dockyard.registry.service import Registry
from dockyard.registry.storage.filesystem import FilesystemStorage
from dockyard.store.store import Store

log = logging.getLogger("dockyard.api")
API_THREADS = 40  # anyio's default thread limit
_SIGNED_HEADERS = re.compile(r"SignedHeaders=([a-z0-9;\-]+)")


class Dockyard:
    """The server's state shared by every request."""

    def __init__(self, config: ServerConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.identities: Identities = config.identities()
        self.registry = Registry(
            store=store.registry,
            storage=FilesystemStorage(config.data_dir / "registry"),
            tokens=Tokens(load_or_create_key(config.data_dir), self.identities),
            address=config.advertised_address,
            after_push=apply_to_repository,
        )
        self.services = awsjson.Services(ECS, ECR)
        self.agents = AgentHub(timeout=config.agent_timeout)
        self.control = ControlHub()
        # The handlers block (database, placement locks): they run on these threads.
        # asyncio's own executor rather than anyio's ``run_in_threadpool``, which
        # costs several times more per call; as many threads as anyio would allow.
        self.handlers = ThreadPoolExecutor(API_THREADS, thread_name_prefix="api")

    async def authenticate(self, request: Request) -> tuple[Caller, bytes]:
        body = await request.body()
        signed = SignedRequest(
            method=request.method,
            url=str(request.url),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        return verify(signed, self.identities, datetime.now(UTC)), body

    async def aws_json(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        try:
            caller, body = await self.authenticate(request)
            _, operation, handler = self.services.resolve(request.headers.get("x-amz-target"))
            context = self._context(caller, request)
            payload = await asyncio.get_running_loop().run_in_executor(
                self.handlers, awsjson.call, operation, handler, context, body
            )
            return _response(200, payload, request_id)
        except AwsError as error:
            return _error(error, request_id)
        except Exception:
            log.exception("request %s failed", request_id)
            return _error(ServerException("An internal error occurred."), request_id)

    def _context(self, caller: Caller, request: Request) -> RequestContext:
        return RequestContext(
            account_id=self.config.account_id,
            region=caller.region,
            identity=caller.identity,
            store=self.store,
            now=time.time(),
            registry=self.registry,
            agents=self.agents,
            control=self.control,
            caller_instance=_signed_header(request, CALLER_HEADER),
        )

    async def agent_poll(self, request: Request) -> Response:
        """The agent channel's long poll (dockyard/ecs/agent_channel.py)."""
        request_id = str(uuid.uuid4())
        try:
            caller, body = await self.authenticate(request)
            answer = await agent_channel.poll(self._context(caller, request), body)
            return JSONResponse(answer, headers={"x-amzn-RequestId": request_id})
        except AwsError as error:
            return _error(error, request_id)
        except Exception:
            log.exception("agent poll %s failed", request_id)
            return _error(ServerException("An internal error occurred."), request_id)

    async def health(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def wipe(self) -> None:
        """Forget every resource and every stored blob."""
        self.store.wipe()
        task_placement.forget()
        storage = self.registry.storage
        for digest, _ in list(storage.digests()):
            storage.delete(digest)
        for upload_id, _ in list(storage.uploads()):
            storage.cancel(upload_id)

    async def reset(self, request: Request) -> Response:
        """Wipe all state (admin identities only): for test suites reusing one server."""
        request_id = str(uuid.uuid4())
        try:
            caller, _ = await self.authenticate(request)
            if not caller.identity.admin:
                raise AccessDeniedException(
                    f"{caller.identity.name} is not an admin and may not reset Dockyard."
                )
            await run_in_threadpool(self.wipe)
        except AwsError as error:
            return _error(error, request_id)
        return JSONResponse({"reset": True})


def _signed_header(request: Request, name: str) -> str | None:
    """A header's value if the SigV4 signature covers it; an unsigned one could have
    been added by anyone on the way."""
    signed = _SIGNED_HEADERS.search(request.headers.get("authorization", ""))
    if signed is None or name not in signed[1].split(";"):
        return None
    return request.headers.get(name)


def _response(status: int, payload: bytes, request_id: str) -> Response:
    return Response(
        payload,
        status_code=status,
        media_type=awsjson.CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id},
    )


def _error(error: AwsError, request_id: str) -> Response:
    response = _response(error.status, orjson.dumps(error.body()), request_id)
    response.headers["x-amzn-ErrorType"] = error.code
    return response


def _lifespan(dockyard: Dockyard) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        jobs = [
            asyncio.create_task(background.run_forever(job))
            for job in [
                *background.registry_jobs(dockyard.registry),
                background.lost_host_job(
                    dockyard.store,
                    dockyard.control,
                    dockyard.agents,
                    dockyard.config.lost_host_grace,
                ),
            ]
        ]
        services = ServiceLoop(
            dockyard.store,
            registry=dockyard.registry,
            agents=dockyard.agents,
            control=dockyard.control,
            lost_host_grace=dockyard.config.lost_host_grace,
        )
        jobs.append(asyncio.create_task(services.run_forever()))
        yield
        for job in jobs:
            job.cancel()
        dockyard.handlers.shutdown(wait=False)
        dockyard.store.close()

    return lifespan


class _Front:
    """The ASGI app uvicorn serves: signed API calls (``POST /``, nearly every request)
    go straight to ``aws_json``, which answers every error itself; everything else
    through starlette's middleware and routing, which cost as much again per call."""

    def __init__(self, app: Starlette, dockyard: Dockyard) -> None:
        self.app, self.dockyard, self.state = app, dockyard, app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/":
            response = await self.dockyard.aws_json(Request(scope, receive))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(config: ServerConfig, store: Store) -> _Front:
    dockyard = Dockyard(config, store)
    app = Starlette(
        routes=[
            Route("/", dockyard.aws_json, methods=["POST"]),
            Route("/health", dockyard.health, methods=["GET"]),
            Route("/_dockyard/reset", dockyard.reset, methods=["POST"]),
            Route("/_dockyard/agent/poll", dockyard.agent_poll, methods=["POST"]),
            *registry_routes(dockyard.registry),
        ],
        lifespan=_lifespan(dockyard),
    )
    app.state.dockyard = dockyard
    return _Front(app, dockyard)
