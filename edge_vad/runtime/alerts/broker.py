"""An MQTT broker that runs inside this process, for demos and tests.

The demo should work on a laptop with nothing installed but the ``demo`` extra,
so instead of asking for mosquitto we run amqtt on its own asyncio event loop in
a background thread. The rest of the program talks to it over a real TCP socket
with ordinary paho clients, exactly as it would talk to a production broker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import TimeoutError as FutureTimeout

from edge_vad.errors import EdgeVadError, require

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0

# amqtt logs every connection at INFO and some normal shutdown paths at
# WARNING/ERROR; a demo broker should not flood the user's terminal.
_QUIET_LOGGERS = ("amqtt", "transitions")


class EmbeddedBroker:
    """A real MQTT 3.1.1 broker (amqtt) served from a background thread.

    ``port=0`` picks a free port; :attr:`url` tells clients where to connect.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker = None

    @property
    def url(self) -> str:
        if self._broker is None:
            raise EdgeVadError("the embedded MQTT broker is not running; call start() first")
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._broker is not None

    def start(self) -> "EmbeddedBroker":
        if self._broker is not None:
            return self
        amqtt_broker = require("amqtt.broker", "demo", "The embedded MQTT broker", package="amqtt")
        for name in _QUIET_LOGGERS:
            if logging.getLogger(name).level == logging.NOTSET:
                logging.getLogger(name).setLevel(logging.CRITICAL)

        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self._run_loop, args=(loop,), name="edge-vad-broker", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            future = asyncio.run_coroutine_threadsafe(self._start_broker(amqtt_broker), loop)
            self._broker = future.result(_START_TIMEOUT)
        except Exception as exc:
            self._stop_loop()
            if isinstance(exc, FutureTimeout):
                exc = TimeoutError(f"no answer within {_START_TIMEOUT:.0f} s")
            raise EdgeVadError(f"cannot start the embedded MQTT broker on {self.host}:{self.port}: {exc}") from exc
        self._wait_until_accepting()
        return self

    def stop(self) -> None:
        broker, loop = self._broker, self._loop
        self._broker = None
        if broker is not None and loop is not None:
            try:
                asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(_STOP_TIMEOUT)
            except Exception:  # noqa: BLE001 - a failed shutdown must still stop the thread
                logging.getLogger(__name__).debug("embedded broker shutdown failed", exc_info=True)
        self._stop_loop()

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EmbeddedBroker({self.host}:{self.port}, {state})"

    async def _start_broker(self, amqtt_broker):
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            # Only anonymous auth: the default plugin set also publishes $SYS
            # topics every 20 s and logs every packet, neither of which a demo
            # broker wants.
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        broker = amqtt_broker.Broker(config, loop=asyncio.get_running_loop())
        await broker.start()
        if self.port == 0:
            server = broker._servers["default"].instance
            self.port = server.sockets[0].getsockname()[1]
        return broker

    def _wait_until_accepting(self) -> None:
        # start_server() returns after listen(), so the kernel already queues
        # connections; we only double-check instead of probing with a raw TCP
        # connection, which amqtt would keep half-open and later warn about.
        server = self._broker._servers["default"].instance
        if not server.is_serving():
            self.stop()
            raise EdgeVadError(f"the embedded MQTT broker does not listen on {self.host}:{self.port}")

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()
        # Cancel whatever amqtt left behind (per-client tasks that were still
        # waiting on a socket) so closing the loop does not warn about
        # pending tasks that were never awaited.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(_STOP_TIMEOUT)
