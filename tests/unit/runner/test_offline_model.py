"""The offline model is a real `agents.Model`: driven through `Runner.run_streamed` here."""

from __future__ import annotations

import asyncio

from agents import Agent, RunConfig, function_tool

from chatrelay.agents import AgentsTurnModel, OfflineModel, ToolCallIntent, TurnContext
from chatrelay.agents.offline import REPLY_PREFIX
from chatrelay.turns import ModelRequest, TextDelta, ToolCallArguments, ToolCallFinished, Usage
from tests.fakes.models import FaultyModel


def _request(text: str) -> ModelRequest:
    return ModelRequest(user_id="alice", conversation_id="thr_1", history=[], text=text)


def _adapter(model: object, tools: list = []) -> AgentsTurnModel:  # noqa: B006
    agent = Agent[TurnContext](name="t", instructions="x", model=model, tools=tools)  # type: ignore[arg-type]
    return AgentsTurnModel(agent, RunConfig(tracing_disabled=True))


async def run(model: OfflineModel, text: str, tools: list = []) -> tuple[list, Usage]:  # noqa: B006
    usage = Usage()
    events = [event async for event in _adapter(model, tools).stream(_request(text), usage)]
    return events, usage


async def test_reply_repeats_the_message_one_word_per_delta() -> None:
    events, trace = await run(OfflineModel(), "the quick  brown fox")
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(deltas) == f"{REPLY_PREFIX} the quick  brown fox"
    assert len(deltas) == len(REPLY_PREFIX.split()) + 4
    assert trace.input_tokens == 4
    assert trace.output_tokens == len(deltas)
    assert trace.total_tokens == 4 + len(deltas)


async def test_reply_is_deterministic() -> None:
    first, _ = await run(OfflineModel(), "same words")
    second, _ = await run(OfflineModel(), "same words")
    assert first == second


async def test_a_recognised_command_becomes_a_tool_call_then_a_confirmation() -> None:
    seen: list[str] = []

    @function_tool
    def add_task(title: str) -> str:
        """Add a task."""
        seen.append(title)
        return f"added {title!r}"

    def recognise(text: str) -> ToolCallIntent | None:
        prefix = "add task "
        return (
            ToolCallIntent("add_task", {"title": text[len(prefix) :]})
            if text.startswith(prefix)
            else None
        )

    events, trace = await run(OfflineModel([recognise]), "add task buy milk", [add_task])

    assert seen == ["buy milk"]
    called = [e for e in events if isinstance(e, ToolCallArguments)]
    returned = [e for e in events if isinstance(e, ToolCallFinished)]
    assert [(c.tool_name, c.arguments) for c in called] == [("add_task", {"title": "buy milk"})]
    assert [r.call_id for r in returned] == [called[0].call_id]
    assert returned[0].result == "added 'buy milk'"
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Done. The tool answered: added 'buy milk'"
    assert trace.input_tokens > 0


async def test_a_command_for_a_tool_not_offered_is_plain_text() -> None:
    def recognise(text: str) -> ToolCallIntent | None:
        return ToolCallIntent("delete_everything", {})

    events, _ = await run(OfflineModel([recognise]), "delete everything")
    assert not any(isinstance(e, ToolCallArguments) for e in events)


async def test_leaving_the_stream_early_cancels_the_run() -> None:
    """No orphan run: when the consumer stops, `result.cancel()` stops the model too."""
    gate = asyncio.Event()  # never opens: without a cancel the model would wait forever
    model = FaultyModel(after_deltas=2, gate=gate)
    stream = _adapter(model).stream(_request("hello world"), Usage())
    first = await anext(stream)
    assert isinstance(first, TextDelta)
    await stream.aclose()
    await asyncio.wait_for(model.ended.wait(), timeout=5)
    assert model.closed
