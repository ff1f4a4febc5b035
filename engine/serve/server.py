"""Running the service: the listening socket, uvicorn, and a clean stop on SIGTERM or Ctrl-C.

The socket is bound here, before uvicorn starts, so a port in use (or a host that is not
this machine's) is one line and exit status 2 instead of uvicorn's log and exit 1. On
SIGTERM or Ctrl-C uvicorn stops accepting connections and finishes the requests in
flight; then the caller's ``stop`` runs (the prediction log is flushed, the alias
watcher stopped) and the process exits 0. uvicorn's own habit of raising the signal
again after its shutdown, which would kill the process before the log is flushed, is
left out.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from engine.errors import UsageError

log = logging.getLogger("engine.serve")

#: The garbage collector's young-generation threshold while serving (see :func:`run`).
_YOUNG_GC_THRESHOLD = 20_000


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free port).

    Raises:
        UsageError: The port is in use, not allowed, or the host is not an address of
            this machine.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"usage error at --host: cannot resolve {host!r}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once after a stop (TIME_WAIT)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"usage error at --port: {host}:{port} is already in use; stop what listens there or "
                             "choose another port (--port 0: any free port)") from exc
        if exc.errno == errno.EACCES:
            raise UsageError(f"usage error at --port: not allowed to listen on port {port} (ports below 1024 need "
                             "privileges); choose a port from 1024") from exc
        if exc.errno == errno.EADDRNOTAVAIL:
            raise UsageError(f"usage error at --host: {host} is not an address of this machine") from exc
        raise UsageError(f"usage error: cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


def address(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(app: Any, sock: socket.socket, stop: Callable[[], None], access_log: bool = False,
        graceful_s: float = 30.0) -> str | None:
    """Serve ``app`` on ``sock`` until SIGTERM or Ctrl-C; return the signal's name (or None).

    Args:
        stop: Called after the last request is answered, before returning.
        access_log: Log a line per request (uvicorn's access log).
        graceful_s: How long requests in flight may take to finish after a signal.
    """
    import uvicorn

    # A request allocates a container (a dict, a tuple) per row it parses, and they all
    # die with its answer. With the young generation's default threshold (700) a
    # 1,000-row request ran a few collections, each walking the request's live rows and
    # moving them into older generations to be walked again: about a millisecond per
    # request. At 20,000, a collection runs when garbage builds up, not on every request.
    gc.set_threshold(_YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
    config = uvicorn.Config(app, log_config=None, access_log=access_log, lifespan="off",
                            timeout_graceful_shutdown=graceful_s, server_header=False)
    server = _Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        try:
            stop()
        finally:
            sock.close()
    return server.stopped_by


class _Server:
    """uvicorn's Server that remembers which signal stopped it and does not re-raise it."""

    def __new__(cls, config: Any) -> Any:
        import uvicorn

        class Server(uvicorn.Server):
            stopped_by: str | None = None

            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                if threading.current_thread() is not threading.main_thread():
                    yield
                    return

                def handler(signum: int, frame: Any) -> None:
                    if self.stopped_by is None:
                        self.stopped_by = signal.Signals(signum).name
                        log.info("%s: finishing the requests in flight, then stopping", self.stopped_by)
                    self.handle_exit(signum, frame)

                previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
                try:
                    yield
                finally:
                    for sig, old in previous.items():
                        signal.signal(sig, old)

        return Server(config)
