"""chatkit-python's own `ChatKitServer`, built the way the ChatKit docs build one, as the
reference the golden tests hold chatrelay against.

`respond()` loads the thread's recent items, converts them with `simple_to_agent_input`, runs
an Agents SDK `Agent` with `Runner.run_streamed` and converts the run with
`stream_agent_response`. The store is `InMemoryStore`; the app is the docs' one route.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator

from agents import Agent, FunctionTool, RunConfig, Runner, function_tool
from chatkit.agents import AgentContext, simple_to_agent_input, stream_agent_response
from chatkit.server import ChatKitServer, StreamingResult
from chatkit.store import Store
from chatkit.types import ThreadMetadata, ThreadStreamEvent, UserMessageItem
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from chatrelay.agents import OfflineModel
from chatrelay.agents.assistant import SYSTEM_PROMPT
from chatrelay.agents.todo_commands import confirm_todo_result, recognize_todo_command
from tests.fakes.chatkit_store import RequestContext

HISTORY_ITEMS = 20
REFERENCE_USER = "alice"

ReferenceAgent = Agent[AgentContext[RequestContext]]


def reference_todo_tools() -> list[FunctionTool]:
    """An `add_task` answering as chatrelay's MCP tool does (ids count from 1), so the
    offline model's confirmation reads the same on both servers."""
    ids = itertools.count(1)

    @function_tool
    def add_task(title: str, description: str | None = None) -> str:
        """Add a task to the user's todo list."""
        task = {"id": next(ids), "title": title, "description": description, "completed": False}
        return json.dumps(task)

    return [add_task]


def reference_agent(tools: list[FunctionTool] | None = None) -> ReferenceAgent:
    """The offline model, understanding todo commands when todo tools are offered."""
    model = OfflineModel([recognize_todo_command], [confirm_todo_result])
    return ReferenceAgent(
        name="reference", instructions=SYSTEM_PROMPT, model=model, tools=list(tools or [])
    )


class ReferenceServer(ChatKitServer[RequestContext]):
    def __init__(
        self,
        store: Store[RequestContext],
        agent: ReferenceAgent,
        history_items: int = HISTORY_ITEMS,
    ) -> None:
        super().__init__(store)
        self.agent = agent
        self.history_items = history_items

    async def respond(
        self,
        thread: ThreadMetadata,
        input_user_message: UserMessageItem | None,
        context: RequestContext,
    ) -> AsyncIterator[ThreadStreamEvent]:
        recent = await self.store.load_thread_items(
            thread.id, None, self.history_items, "desc", context
        )
        agent_input = await simple_to_agent_input(list(reversed(recent.data)))
        agent_context = AgentContext(thread=thread, store=self.store, request_context=context)
        result = Runner.run_streamed(
            self.agent,
            agent_input,
            context=agent_context,
            run_config=RunConfig(tracing_disabled=True),
        )
        async for event in stream_agent_response(agent_context, result):
            yield event


def reference_app(server: ReferenceServer, errors: list[Exception]) -> Starlette:
    """The docs' endpoint: POST /chatkit -> `server.process()`, with no error handling of its
    own (what escapes `process()` is appended to `errors`, then left to Starlette)."""

    async def endpoint(request: Request) -> Response:
        try:
            result = await server.process(await request.body(), RequestContext(REFERENCE_USER))
        except Exception as exc:
            errors.append(exc)
            raise
        if isinstance(result, StreamingResult):
            return StreamingResponse(result, media_type="text/event-stream")
        return Response(result.json, media_type="application/json")

    return Starlette(routes=[Route("/chatkit", endpoint, methods=["POST"])])
