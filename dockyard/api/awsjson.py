"""The AWS JSON 1.1 protocol: find the operation, check the input, shape the answer.

A ``Service`` couples a botocore service model with the handlers registered for its
operations. ``dispatch`` is the one path every signed API call takes after the
signature is verified::

    X-Amz-Target -> operation -> JSON body -> model validation -> handler -> JSON
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import botocore.session
import orjson
from botocore.model import OperationModel, ServiceModel

from dockyard.api.context import RequestContext
from dockyard.api.errors import SerializationException, UnknownOperationException
from dockyard.api.validate import validate_input

Params = dict[str, Any]
Handler = Callable[[RequestContext, Params], Params]

CONTENT_TYPE = "application/x-amz-json-1.1"


class Service:
    """One AWS service: its model, its X-Amz-Target prefix and its handlers."""

    def __init__(self, model_name: str) -> None:
        self.model: ServiceModel = botocore.session.get_session().get_service_model(model_name)
        self.target_prefix: str = self.model.metadata["targetPrefix"]
        self.signing_name: str = self.model.signing_name
        self.handlers: dict[str, Handler] = {}

    def operation(self, name: str) -> Callable[[Handler], Handler]:
        """Register the decorated function as the handler of operation ``name``."""
        operation_model = self.model.operation_model(name)  # fails fast on a typo

        def register(handler: Handler) -> Handler:
            self.handlers[operation_model.name] = handler
            return handler

        return register

    def find(self, operation: str) -> tuple[OperationModel, Handler]:
        handler = self.handlers.get(operation)
        if handler is None:
            raise UnknownOperationException(f"Operation {operation} is not supported.")
        return self.model.operation_model(operation), handler


class Services:
    """The services served on ``POST /``, looked up by X-Amz-Target prefix."""

    def __init__(self, *services: Service) -> None:
        self._by_prefix = {s.target_prefix: s for s in services}

    def resolve(self, target: str | None) -> tuple[Service, OperationModel, Handler]:
        prefix, _, operation = (target or "").partition(".")
        service = self._by_prefix.get(prefix)
        if service is None or not operation:
            raise UnknownOperationException("")
        return service, *service.find(operation)


def parse_body(body: bytes) -> Params:
    if not body.strip():
        return {}
    try:
        params = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SerializationException(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise SerializationException("The request body must be a JSON object.")
    return params


def call(
    operation: OperationModel, handler: Handler, context: RequestContext, body: bytes
) -> bytes:
    """Run one operation end to end; raises ``AwsError`` for anything the caller did wrong."""
    params = parse_body(body)
    validate_input(operation, params)
    return orjson.dumps(handler(context, params))
