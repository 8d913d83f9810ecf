"""The app under uvicorn, where SIGTERM drains it (`chatrelay.runtime.Drain`) instead of
cutting it.

uvicorn's own SIGTERM sets `should_exit` at once, and from there everything ends in the wrong
order for a chat server: sse-starlette's shutdown watcher (it polls that flag) ends every open
stream mid-reply with no final events; uvicorn refuses new connections and waits
`timeout_graceful_shutdown` for the open ones, cancelling JSON waiters (a bare 500
text/plain), and only then does the lifespan give the turns their grace. So the first
signal goes to the drain, and `should_exit` is set only once the drain is over: the turns
have finished or been stopped and saved, their streams have written their final events and
their JSON waiters have their answers. What uvicorn then waits for is brief.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from chatrelay.runtime import Runtime

logger = logging.getLogger("chatrelay.server")

CONNECTIONS_CLOSE_SECONDS = 1
"""After the drain, how long uvicorn waits for connections still open: followers of other
instances' turns (sse-starlette ends them within half a second) and answers being sent."""
STARTUP_FAILURE = 3
"""The exit status of `uvicorn.run` when the server did not start (the lifespan failed)."""


class DrainingServer(uvicorn.Server):
    """uvicorn's server, whose first SIGTERM or Ctrl+C drains the app before uvicorn shuts
    down; a second one cuts the grace short (the running turns are stopped and saved now), a
    third starts uvicorn's own shutdown whatever the drain is doing."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signals = 0

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler (`signal.signal`): it runs between two bytecodes of the loop's
        # thread, so the drain is handed to the loop, never run here.
        runtime: Runtime | None = getattr(self._app.state, "runtime", None)
        if runtime is None or self._loop is None or self.should_exit:
            super().handle_exit(sig, frame)  # not started yet, or already shutting down
            return
        self._loop.call_soon_threadsafe(self._drain, runtime, sig)

    def _drain(self, runtime: Runtime, sig: int) -> None:
        self._signals += 1
        if self._signals == 1:
            logger.info(
                "signal %s: draining (new turns refused, %d running get %g s to finish)",
                sig,
                len(runtime.registry.running_turns()),
                runtime.settings.shutdown_grace_seconds,
            )
            runtime.drain.begin(then=lambda: self._shut_down(sig))
        elif self._signals == 2:
            logger.info("signal %s again: stopping the running turns now", sig)
            runtime.drain.hurry()
        else:  # the drain is stuck (a commit retrying a database that is gone): uvicorn's way
            self._shut_down(sig)

    def _shut_down(self, sig: int) -> None:
        """uvicorn's own shutdown, now that nothing is left to lose (and sse-starlette's
        patch of it, which marks the exit for its streams, runs too). Once: a second call
        would be a second Ctrl+C to uvicorn, which then skips the lifespan's shutdown."""
        if not self.should_exit:
            super().handle_exit(sig, None)


def serve(app: FastAPI, *, host: str, port: int, **options: Any) -> int:
    """Run `app` until a signal has drained it; 0, or `STARTUP_FAILURE` if it never started.
    `options` are more of `uvicorn.Config`'s (its WebSocket protocol)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # keep our handlers (JSON by default)
        timeout_graceful_shutdown=CONNECTIONS_CLOSE_SECONDS,
        **options,
    )
    server = DrainingServer(config, app)
    try:
        server.run()
    except KeyboardInterrupt:  # as uvicorn.run: a Ctrl+C uvicorn re-raised on its way out
        pass
    return 0 if server.started else STARTUP_FAILURE
