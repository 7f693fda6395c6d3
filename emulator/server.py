"""Builds the ASGI application and serves it over HTTPS with uvicorn, next to the Service Bus
namespace's AMQP broker (its own thread, emulator.servicebus.broker)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp

from emulator import arm, graph, healthdata, keyvault, keyvault_certificates, keyvault_keys, storage, tls
from emulator.control import ControlPlane
from emulator.errors import PlatformError, render, service_of
from emulator.faults import FaultMiddleware
from emulator.platform import Platform
from emulator.servicebus import rest as servicebus_rest
from emulator.servicebus.broker import Broker


async def _not_found(request: Request, exc: Exception) -> Response:
    service = service_of(request.url.path)
    if service == "graph":
        error = PlatformError(400, "BadRequest", f"Resource not found for the segment '{request.url.path}'.")
    elif service == "fhir":
        error = PlatformError(404, "not-found", "The requested route was not found.", service="fhir")
    elif service == "dicom":
        error = PlatformError(404, "NotFound", "The specified resource cannot be found.", service="dicom")
    else:
        error = PlatformError(404, "NotFound", "The requested resource was not found.", service=service)
    return render(request, error)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    service = service_of(request.url.path)
    return render(
        request,
        PlatformError(
            405,
            {"graph": "Request_BadRequest", "fhir": "not-supported", "arm": "MethodNotAllowed"}.get(
                service, "BadRequest"
            ),
            f"The HTTP method '{request.method}' is not allowed.",
            service=service,
        ),
    )


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client closed its connection before its request's body arrived (a cancelled upload):
    the request is not applied, and there is nobody to answer. Not an error of the emulator's:
    no traceback; the request log shows 499."""
    return Response(status_code=499)


def build_app(platform: Platform) -> ASGIApp:
    app = Starlette(
        routes=[
            *ControlPlane(platform).routes(),
            *graph.routes(platform),
            *keyvault.routes(platform.base_url, platform.identity, lambda: platform.vault),
            *keyvault_certificates.routes(
                platform.base_url, platform.identity, lambda: platform.certificates
            ),
            *keyvault_keys.routes(platform.base_url, platform.identity, lambda: platform.keys),
            *storage.routes(platform.identity, lambda: platform.storage),
            *arm.routes(platform.identity, lambda: platform.arm),
            *healthdata.routes(platform.identity, lambda: platform.arm, (platform.fhir, platform.dicom)),
            *servicebus_rest.routes(platform.servicebus),
            *platform.identity.routes(),
        ],
        exception_handlers={
            PlatformError: render,
            ClientDisconnect: _client_gone,
            404: _not_found,
            405: _method_not_allowed,
        },
    )
    app.state.platform = platform
    return FaultMiddleware(app, platform.faults)


def serve(port: int, data_dir: Path, amqp_port: int = 0) -> None:
    """Serve until interrupted; write ``ca.pem`` and ``settings.env`` once listening (HTTPS on
    ``port``, Service Bus's AMQP on ``amqp_port``; 0 picks a free one)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    files = tls.generate(data_dir)
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose protocol
    # says TCP, and an accepted socket inherits the listener's. With Nagle on, a response
    # written in two segments waited ~40 ms for the client's delayed ACK (platform-facts.md).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    bound_port = sock.getsockname()[1]
    platform = Platform(base_url=f"https://127.0.0.1:{bound_port}")
    broker = Broker(platform.servicebus, port=amqp_port)
    platform.servicebus.serve_at(broker.port, bound_port)
    broker.start()
    config = uvicorn.Config(
        build_app(platform),
        ssl_certfile=str(files.cert_file),
        ssl_keyfile=str(files.key_file),
        log_level="warning",
        access_log=False,
        lifespan="off",
        http="h11",
        loop="asyncio",
        timeout_keep_alive=30,
        # A client that keeps its connection open (an SDK's pool) must not hold a stop for
        # longer: the launcher kills the process after 10 s anyway.
        timeout_graceful_shutdown=1,
        backlog=2048,
    )
    server = uvicorn.Server(config)
    # Cutting kept connections short is what the short graceful shutdown is for: not an error.
    logging.getLogger("uvicorn.error").addFilter(
        lambda record: "timeout graceful shutdown exceeded" not in record.getMessage()
    )

    async def main() -> None:
        sock.listen(config.backlog)
        settings_file = data_dir / "settings.env"
        tmp = data_dir / "settings.env.tmp"
        tmp.write_text("".join(f"{k}={v}\n" for k, v in platform.settings(str(files.ca_file)).items()))
        os.chmod(tmp, 0o600)
        tmp.replace(settings_file)  # atomic: a reader sees all of it or nothing
        await server.serve(sockets=[sock])

    try:
        asyncio.run(main())
    finally:
        broker.stop()
