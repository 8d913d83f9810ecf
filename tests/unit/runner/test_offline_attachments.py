"""The offline model acknowledges a message's attachments, by kind and name, in order."""

from __future__ import annotations

from agents import Agent, RunConfig

from chatrelay.agents import AgentsTurnModel, OfflineModel, TurnContext
from chatrelay.agents.todo_commands import recognize_todo_command
from chatrelay.turns import AttachmentRef, ModelRequest, TextDelta, ToolCallArguments, Usage
from tests.fakes.files import PDF, PNG

FILES = {"atc_1": PNG, "atc_2": PNG, "atc_3": PDF, "atc_4": b"a note"}
CAT = AttachmentRef("atc_1", "cat.png", "image/png", "image")
DOG = AttachmentRef("atc_2", "dog.png", "image/png", "image")
MENU = AttachmentRef("atc_3", "menu.pdf", "application/pdf", "file")
NOTE = AttachmentRef("atc_4", "note.txt", "text/plain", "file")


async def read(attachment: AttachmentRef) -> bytes:
    return FILES[attachment.id]


async def gone(attachment: AttachmentRef) -> bytes:
    raise FileNotFoundError(attachment.id)


async def reply(text: str, *attachments: AttachmentRef, reader=read) -> list[object]:  # type: ignore[no-untyped-def]
    model = OfflineModel([recognize_todo_command])
    agent = Agent[TurnContext](name="t", instructions="x", model=model, tools=[])
    adapter = AgentsTurnModel(agent, RunConfig(tracing_disabled=True), read_attachment=reader)
    request = ModelRequest("alice", "thr_1", [], text, attachments=attachments)
    return [event async for event in adapter.stream(request, Usage())]


def text_of(events: list[object]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_one_image_without_text() -> None:
    assert text_of(await reply("", CAT)) == "I received 1 image: cat.png."


async def test_images_and_files_are_counted_by_kind_before_the_text() -> None:
    events = await reply("what are these?", CAT, MENU, DOG, NOTE)
    assert text_of(events) == (
        "I received 2 images: cat.png, dog.png and 2 files: menu.pdf, note.txt. "
        "This is chatrelay's offline model. You said: what are these?"
    )


async def test_the_echo_is_the_users_text_not_the_labels() -> None:
    events = await reply("add task buy milk", CAT)
    assert not any(isinstance(e, ToolCallArguments) for e in events)  # no todo tool offered
    assert text_of(events) == (
        "I received 1 image: cat.png. "
        "This is chatrelay's offline model. You said: add task buy milk"
    )


async def test_an_attachment_deleted_since_is_left_out() -> None:
    assert text_of(await reply("hi", CAT, reader=gone)) == (
        "This is chatrelay's offline model. You said: hi"
    )


async def test_a_later_turn_reads_an_attachments_only_message_as_a_note() -> None:
    seen: list[object] = []

    class Recording(OfflineModel):
        async def stream_response(self, system, input, *args, **kwargs):  # type: ignore[no-untyped-def, override]
            seen.extend(input)
            async for event in super().stream_response(system, input, *args, **kwargs):
                yield event

    agent = Agent[TurnContext](name="t", instructions="x", model=Recording(), tools=[])
    adapter = AgentsTurnModel(agent, RunConfig(tracing_disabled=True), read_attachment=read)
    history = [("user", ""), ("assistant", "I received 1 image: cat.png.")]
    request = ModelRequest("alice", "thr_1", history, "and now?")
    _ = [event async for event in adapter.stream(request, Usage())]
    assert [item["content"] for item in seen[:2]] == [  # type: ignore[index]
        "(attachments without text)",
        "I received 1 image: cat.png.",
    ]
