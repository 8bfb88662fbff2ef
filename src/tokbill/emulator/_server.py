"""Run the emulator with uvicorn on a daemon thread, and the embedded singleton."""

from __future__ import annotations

import atexit
import logging
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from tokbill._errors import ConfigurationError
from tokbill.emulator._app import EmulatorApp, RequestLog
from tokbill.emulator._faults import Faults
from tokbill.emulator._reader import Store
from tokbill.emulator._store import Clock, Database, utc_now

logger = logging.getLogger(__name__)

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0


class EmulatorServer:
    """A Lago-compatible HTTP server on a loopback port, state in SQLite.

    ``start()`` returns once the port accepts connections; ``stop()`` shuts
    the server down within a few seconds even when a request is stalled.
    ``port=0`` picks a free port. Without ``api_key`` any bearer key is
    accepted; with it, any other key gets 401. ``clock`` replaces the current
    time for billing periods and subscription dates (tests pin it).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        db_path: str | Path | None = None,
        api_key: str | None = None,
        faults: Faults | None = None,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._db = Database(db_path, clock)
        self.requests = RequestLog()
        """Every API request answered: method, path and status."""
        self.store = Store(self._db)
        """Read helpers over the stored state."""
        self._app = EmulatorApp(
            self._db, faults if faults is not None else Faults(), self.requests, api_key
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    def __repr__(self) -> str:
        state = f"url={self.url!r}" if self._port else "stopped"
        return f"EmulatorServer({state}, db={self._db.path!r})"

    @property
    def faults(self) -> Faults:
        """The live fault settings: ``server.faults.update(...)`` works mid-test."""
        return self._app.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._app.faults = faults

    @property
    def port(self) -> int:
        """The bound port; only known once started."""
        if self._port is None:
            raise ConfigurationError("The emulator has no port until it is started.")
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port``, as Lago's self-hosting docs write it."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """``url`` plus ``/api/v1``."""
        return f"{self.url}/api/v1"

    def start(self) -> EmulatorServer:
        """Serve on a daemon thread; return once connections are accepted."""
        if self._thread is not None:
            return self
        sock = _bind(self.host, self._requested_port)
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app.starlette(),
            # No log_config: uvicorn would install its own handlers, and a
            # library leaves handlers to the application.
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name="tokbill-emulator",
            daemon=True,
        )
        self._thread.start()
        self._wait_until_started()
        logger.info(
            "Lago emulator listening on %s (state in %s).", self.url, self._db.path
        )
        return self

    def _wait_until_started(self) -> None:
        # uvicorn only sets a flag once it serves, so poll it, briefly.
        deadline = time.monotonic() + _START_TIMEOUT_S
        while self._server is not None and not self._server.started:
            if self._thread is None or not self._thread.is_alive():
                raise ConfigurationError(f"The emulator failed to start on {self.url}.")
            if time.monotonic() > deadline:
                raise ConfigurationError(
                    f"The emulator did not start on {self.url} within "
                    f"{_START_TIMEOUT_S:.0f} s."
                )
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop serving; safe to call twice. Stored state stays readable."""
        if self._server is None or self._thread is None:
            return
        self._app.end_fault_delays()
        self._server.should_exit = True
        self._thread.join(_STOP_TIMEOUT_S)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(_STOP_TIMEOUT_S)
        self._server = None
        self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _bind(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that
    # say so, and without it keep-alive responses wait ~40 ms for delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ConfigurationError(
            f"The emulator cannot listen on {host}:{port}: {error.strerror}."
        ) from error
    sock.listen(128)
    sock.setblocking(False)
    return sock


_embedded: dict[Path, EmulatorServer] = {}
_embedded_lock = threading.Lock()


def embedded_url(db_path: str | Path, **kwargs: Any) -> str:
    """The API URL of this process's emulator for ``db_path``, started if needed.

    One server per database file per process, on a free loopback port, stopped
    at interpreter exit. The parent directory of ``db_path`` is created.
    """
    key = Path(db_path).resolve()
    with _embedded_lock:
        server = _embedded.get(key)
        if server is None:
            server = EmulatorServer(db_path=key, **kwargs).start()
            _embedded[key] = server
            atexit.register(server.stop)
        return server.api_url
