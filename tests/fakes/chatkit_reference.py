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
from typing import Any

from agents import Agent, FunctionTool, RunConfig, Runner, function_tool
from chatkit.agents import AgentContext, ThreadItemConverter, stream_agent_response
from chatkit.server import ChatKitServer, StreamingResult
from chatkit.store import AttachmentStore, Store
from chatkit.types import (
    Attachment,
    AttachmentCreateParams,
    AttachmentUploadDescriptor,
    FileAttachment,
    ImageAttachment,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
)
from pydantic import AnyUrl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from chatrelay.agents import OfflineModel
from chatrelay.agents.assistant import SYSTEM_PROMPT
from chatrelay.agents.attachments import content_part, label
from chatrelay.agents.todo_commands import confirm_todo_result, recognize_todo_command
from chatrelay.turns import AttachmentRef
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


class ReferenceFiles(AttachmentStore[RequestContext]):
    """The least an app writes for two-phase uploads: an upload URL per attachment (the
    app's `/files/{id}` route takes the bytes into `data`) and a preview URL for images."""

    def __init__(self, store: Store[RequestContext]) -> None:
        self.store = store
        self.data: dict[str, bytes] = {}

    async def create_attachment(
        self, input: AttachmentCreateParams, context: RequestContext
    ) -> Attachment:
        attachment_id = self.generate_attachment_id(input.mime_type, context)
        url = AnyUrl(f"http://test/files/{attachment_id}")
        upload = AttachmentUploadDescriptor(url=url, method="POST")
        fields: dict[str, Any] = {
            "id": attachment_id,
            "name": input.name,
            "mime_type": input.mime_type,
            "upload_descriptor": upload,
        }
        if input.mime_type.startswith("image/"):
            return ImageAttachment(**fields, preview_url=AnyUrl(f"{url}/preview"))
        return FileAttachment(**fields)

    async def delete_attachment(self, attachment_id: str, context: RequestContext) -> None:
        self.data.pop(attachment_id, None)


class ReferenceConverter(ThreadItemConverter):
    """The converter the docs ask for once attachments are on: each attachment becomes a
    content part; the label before each (chatrelay's shape) keeps the model's input equal."""

    def __init__(self, files: ReferenceFiles) -> None:
        self.files = files

    async def attachment_to_message_content(self, attachment: Attachment) -> Any:
        ref = AttachmentRef(attachment.id, attachment.name, attachment.mime_type, attachment.type)
        return content_part(ref, self.files.data[attachment.id])

    async def user_message_to_input(
        self, item: UserMessageItem, is_last_message: bool = True
    ) -> Any:
        converted = await super().user_message_to_input(item, is_last_message)
        messages = converted if isinstance(converted, list) else [converted]
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if not item.attachments or not isinstance(content, list) or len(content) < 2:
                continue
            parts = content[len(content) - len(item.attachments) :]
            labelled = []
            for attachment, part in zip(item.attachments, parts, strict=True):
                ref = AttachmentRef(attachment.id, attachment.name, "", attachment.type)
                labelled += [{"type": "input_text", "text": label(ref)}, part]
            message["content"] = content[: len(content) - len(item.attachments)] + labelled
        return converted


class ReferenceServer(ChatKitServer[RequestContext]):
    def __init__(
        self,
        store: Store[RequestContext],
        agent: ReferenceAgent,
        history_items: int = HISTORY_ITEMS,
    ) -> None:
        self.files = ReferenceFiles(store)
        super().__init__(store, self.files)
        self.agent = agent
        self.history_items = history_items
        self.converter = ReferenceConverter(self.files)

    async def respond(
        self,
        thread: ThreadMetadata,
        input_user_message: UserMessageItem | None,
        context: RequestContext,
    ) -> AsyncIterator[ThreadStreamEvent]:
        recent = await self.store.load_thread_items(
            thread.id, None, self.history_items, "desc", context
        )
        agent_input = await self.converter.to_agent_input(list(reversed(recent.data)))
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

    async def upload(request: Request) -> Response:
        async with request.form() as form:
            file = form["file"]
            assert not isinstance(file, str)
            server.files.data[request.path_params["attachment_id"]] = await file.read()
        return Response("{}", media_type="application/json")

    return Starlette(
        routes=[
            Route("/chatkit", endpoint, methods=["POST"]),
            Route("/files/{attachment_id}", upload, methods=["POST"]),
        ]
    )
