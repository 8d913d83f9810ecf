"""Attachments end to end through `/chatkit` and the signed links, on a local directory and
on an S3-compatible server (moto's, started by the tests): upload, limits, type checks,
links that expire or were used, delete and the orphan sweep."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from chatkit.types import FileAttachment, ImageAttachment
from fastapi import FastAPI

from chatrelay.attachments import AttachmentService
from chatrelay.store import Attachment, transaction
from chatrelay.turns import utcnow
from tests.conftest import AppFactory, client_for
from tests.fakes.files import PDF, PNG, SCRIPT
from tests.integration.attachments import (
    S3_CREDENTIALS,
    create,
    message_input,
    new_bucket,
    send,
    upload,
    uploaded,
)
from tests.integration.attachments import s3_endpoint as s3_endpoint  # the fixture
from tests.integration.helpers import context_of
from tests.sse import Frame, done_item, parse_sse, validate_chatkit

MAX_BYTES = 4096


@dataclass
class Env:
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def service(self) -> AttachmentService:
        return context_of(self.app).attachments

    async def row(self, attachment_id: str) -> Attachment | None:
        async with transaction(context_of(self.app).sessions) as db:
            return await db.get(Attachment, attachment_id)

    async def stored(self, attachment_id: str) -> bytes | None:
        try:
            return await self.service._files.read(attachment_id)
        except FileNotFoundError:
            return None


@pytest.fixture(params=["local", "s3"])
async def env(
    request: pytest.FixtureRequest,
    app_factory: AppFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Env]:
    """The app on a local attachment directory, or on a bucket of moto's S3 server."""
    overrides: dict[str, Any] = {"attachment_max_bytes": MAX_BYTES}
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        for name, value in S3_CREDENTIALS.items():
            monkeypatch.setenv(name, value)
        overrides["attachment_store"] = f"s3://{new_bucket(endpoint)}/uploads"
        overrides["attachment_s3_endpoint"] = endpoint
    else:
        overrides["attachment_store"] = str(tmp_path / "files")
    app = await app_factory(**overrides)
    async with client_for(app) as client:
        yield Env(app, client)


def frames_of(response: httpx.Response) -> list[Frame]:
    assert response.status_code == 200, response.text
    frames = parse_sse(response.text)
    validate_chatkit(frames)
    return frames


async def test_an_image_is_created_uploaded_sent_and_shown_again(env: Env) -> None:
    created = await create(env.client, "alice", "cat.png", PNG, "image/png")
    ImageAttachment.model_validate(created)
    descriptor = created["upload_descriptor"]
    assert descriptor["method"] == "POST"
    assert descriptor["url"].startswith(f"http://test/chatkit/attachments/{created['id']}?")
    assert "signature=" in descriptor["url"] and "Bearer" not in descriptor["url"]

    answer = await upload(env.client, descriptor["url"], PNG, name="cat.png")
    assert answer.status_code == 200, answer.text
    assert "upload_descriptor" not in answer.json()
    assert await env.stored(created["id"]) == PNG

    sent = await send(
        env.client, "alice", "threads.create", input=message_input("", [created["id"]])
    )
    frames = frames_of(sent)
    user = done_item(frames, "user_message")
    assert [a["name"] for a in user["attachments"]] == ["cat.png"]
    assert done_item(frames)["content"][0]["text"] == "I received 1 image: cat.png."
    thread = frames[0].data["thread"]
    (titled,) = [f.data["thread"] for f in frames if f.type == "thread.updated"]
    assert titled["title"] == "cat.png"  # no text to take a title from

    listed = await send(env.client, "alice", "items.list", thread_id=thread["id"], order="asc")
    (shown,) = listed.json()["data"][0]["attachments"]
    assert (shown["id"], shown["thread_id"], shown["mime_type"]) == (
        created["id"],
        thread["id"],
        "image/png",
    )
    preview = await env.client.get(shown["preview_url"])
    assert preview.status_code == 200
    assert preview.content == PNG
    assert preview.headers["content-type"] == "image/png"
    assert preview.headers["x-content-type-options"] == "nosniff"
    stored = await env.row(created["id"])
    assert stored is not None and stored.message_id == user["id"]


async def test_a_file_goes_up_with_a_raw_put_and_is_acknowledged_with_the_text(
    env: Env,
) -> None:
    created = await create(env.client, "alice", "report.pdf", PDF, "application/pdf")
    FileAttachment.model_validate(created)
    answer = await upload(env.client, created["upload_descriptor"]["url"], PDF, method="PUT")
    assert answer.status_code == 200, answer.text

    message = message_input("sum it up", [created["id"]])
    frames = frames_of(await send(env.client, "alice", "threads.create", input=message))
    assert done_item(frames)["content"][0]["text"] == (
        "I received 1 file: report.pdf. This is chatrelay's offline model. You said: sum it up"
    )


async def test_too_large_declared_or_actual_is_413_and_nothing_is_kept(env: Env) -> None:
    declared = await send(
        env.client,
        "alice",
        "attachments.create",
        name="big.png",
        size=MAX_BYTES + 1,
        mime_type="image/png",
    )
    assert declared.status_code == 413
    assert declared.json() == {"detail": f"the file is larger than {MAX_BYTES} bytes"}

    big = PNG + b"\x00" * MAX_BYTES
    # Multipart: found too large as the file streams by; the attachment is gone with it.
    created = await create(env.client, "alice", "small.png", PNG, "image/png")
    actual = await upload(env.client, created["upload_descriptor"]["url"], big)
    assert actual.status_code == 413, actual.text
    assert await env.row(created["id"]) is None
    assert await env.stored(created["id"]) is None
    # A PUT whose Content-Length is too large: refused before the link is used.
    created = await create(env.client, "alice", "small.png", PNG, "image/png")
    actual = await upload(env.client, created["upload_descriptor"]["url"], big, method="PUT")
    assert actual.status_code == 413, actual.text
    kept = await env.row(created["id"])
    assert kept is not None and kept.state == "pending"
    assert await env.stored(created["id"]) is None


async def test_a_body_longer_than_its_content_length_says_is_still_cut_off(env: Env) -> None:
    created = await create(env.client, "alice", "a.png", PNG, "image/png")

    async def body() -> AsyncIterator[bytes]:
        yield PNG
        for _ in range(MAX_BYTES):
            yield b"\x00"

    refused = await env.client.put(created["upload_descriptor"]["url"], content=body())
    assert refused.status_code == 413
    assert await env.row(created["id"]) is None


async def test_bytes_not_of_the_declared_type_are_415(env: Env) -> None:
    created = await create(env.client, "alice", "cat.png", SCRIPT, "image/png")
    refused = await upload(env.client, created["upload_descriptor"]["url"], SCRIPT)
    assert refused.status_code == 415
    assert refused.json() == {"detail": "the file's content is not image/png"}
    assert await env.row(created["id"]) is None
    assert await env.stored(created["id"]) is None

    not_allowed = await send(
        env.client, "alice", "attachments.create", name="x.sh", size=10, mime_type="text/x-sh"
    )
    assert not_allowed.status_code == 415
    assert not_allowed.json() == {"detail": "attachments of type 'text/x-sh' are not accepted"}


async def test_an_upload_link_works_once_and_only_until_it_expires(env: Env) -> None:
    created = await create(env.client, "alice", "cat.png", PNG, "image/png")
    url = created["upload_descriptor"]["url"]
    assert (await upload(env.client, url, PNG)).status_code == 200
    reused = await upload(env.client, url, PNG)
    assert reused.status_code == 403
    assert reused.json() == {"detail": "this upload link was used already"}
    assert await env.stored(created["id"]) == PNG  # the first upload stands

    late = await create(env.client, "alice", "late.png", PNG, "image/png")
    real_clock = env.service.clock
    env.service.clock = lambda: real_clock() + env.service.limits.upload_seconds + 1
    expired = await upload(env.client, late["upload_descriptor"]["url"], PNG)
    assert expired.status_code == 403
    assert expired.json() == {"detail": "this link has expired"}
    env.service.clock = real_clock
    late_row = await env.row(late["id"])
    assert late_row is not None and late_row.state == "pending"  # an expired link uses nothing


async def test_a_forged_or_borrowed_signature_is_403_before_anything_is_looked_up(
    env: Env,
) -> None:
    mine = await create(env.client, "alice", "a.png", PNG, "image/png")
    theirs = await create(env.client, "bob", "b.png", PNG, "image/png")
    mine_url = mine["upload_descriptor"]["url"]
    borrowed = mine_url.replace(mine["id"], theirs["id"])  # alice's signature on bob's id
    unknown = mine_url.replace(mine["id"], "atc_unknown")
    tampered = mine_url[:-4] + ("0000" if not mine_url.endswith("0000") else "1111")
    answers = [await upload(env.client, url, PNG) for url in (borrowed, unknown, tampered)]
    assert [a.status_code for a in answers] == [403, 403, 403]
    assert {a.json()["detail"] for a in answers} == {"invalid link signature"}
    preview = theirs["preview_url"].replace(theirs["id"], mine["id"])
    assert (await env.client.get(preview)).status_code == 403
    bob = await env.row(theirs["id"])
    assert bob is not None and bob.state == "pending"


async def test_delete_removes_the_row_and_the_bytes(env: Env) -> None:
    created = await uploaded(env.client, "alice", "cat.png", PNG, "image/png")
    deleted = await send(env.client, "alice", "attachments.delete", attachment_id=created["id"])
    assert (deleted.status_code, deleted.json()) == (200, {})
    assert await env.row(created["id"]) is None
    assert await env.stored(created["id"]) is None
    assert (await env.client.get(created["preview_url"])).status_code == 404
    again = await send(env.client, "alice", "attachments.delete", attachment_id=created["id"])
    assert again.status_code == 404


async def test_an_attachment_is_sent_once_and_only_once_uploaded(env: Env) -> None:
    pending = await create(env.client, "alice", "cat.png", PNG, "image/png")
    early = await send(
        env.client, "alice", "threads.create", input=message_input("hi", [pending["id"]])
    )
    assert early.status_code == 409
    assert early.json() == {"detail": f"attachment {pending['id']} has not been uploaded"}

    done = await uploaded(env.client, "alice", "dog.png", PNG, "image/png")
    frames_of(
        await send(env.client, "alice", "threads.create", input=message_input("a", [done["id"]]))
    )
    twice = await send(
        env.client, "alice", "threads.create", input=message_input("b", [done["id"]])
    )
    assert twice.status_code == 409


async def test_the_sweep_deletes_unsent_attachments_past_their_age(env: Env) -> None:
    unsent = await uploaded(env.client, "alice", "a.png", PNG, "image/png")
    never_uploaded = await create(env.client, "alice", "b.png", PNG, "image/png")
    sent = await uploaded(env.client, "alice", "c.png", PNG, "image/png")
    in_deleted = await uploaded(env.client, "alice", "d.png", PNG, "image/png")
    frames_of(
        await send(env.client, "alice", "threads.create", input=message_input("x", [sent["id"]]))
    )
    doomed = frames_of(
        await send(
            env.client, "alice", "threads.create", input=message_input("y", [in_deleted["id"]])
        )
    )
    thread_id = doomed[0].data["thread"]["id"]
    assert (
        await send(env.client, "alice", "threads.delete", thread_id=thread_id)
    ).status_code == 200

    hours = env.service.limits.orphan_hours
    assert await env.service.sweep(utcnow() + timedelta(hours=hours - 0.1)) == 0  # too young
    assert await env.service.sweep(utcnow() + timedelta(hours=hours + 0.1)) == 3
    for gone in (unsent, never_uploaded, in_deleted):
        assert await env.row(gone["id"]) is None
        assert await env.stored(gone["id"]) is None
    assert await env.row(sent["id"]) is not None
    assert await env.stored(sent["id"]) == PNG


async def test_another_users_attachment_answers_exactly_like_an_unknown_one(env: Env) -> None:
    alices = await uploaded(env.client, "alice", "cat.png", PNG, "image/png")
    unknown = "atc_" + "0" * 32

    def same(theirs: httpx.Response, missing: httpx.Response) -> None:
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json() == {
            k: v.replace(unknown, alices["id"]) for k, v in missing.json().items()
        }

    for attachment_id in (alices["id"], unknown):
        assert (await env.row(attachment_id) is None) == (attachment_id == unknown)
    same(
        await send(env.client, "bob", "attachments.delete", attachment_id=alices["id"]),
        await send(env.client, "bob", "attachments.delete", attachment_id=unknown),
    )
    same(
        await send(env.client, "bob", "threads.create", input=message_input("x", [alices["id"]])),
        await send(env.client, "bob", "threads.create", input=message_input("x", [unknown])),
    )
    bobs_thread = frames_of(
        await send(env.client, "bob", "threads.create", input=message_input("mine", []))
    )[0].data["thread"]["id"]
    same(
        await send(
            env.client,
            "bob",
            "threads.add_user_message",
            thread_id=bobs_thread,
            input=message_input("x", [alices["id"]]),
        ),
        await send(
            env.client,
            "bob",
            "threads.add_user_message",
            thread_id=bobs_thread,
            input=message_input("x", [unknown]),
        ),
    )
    # Nothing bob did touched it: alice still has it, unsent, and sends it.
    kept = await env.row(alices["id"])
    assert kept is not None and kept.message_id is None
    assert await env.stored(alices["id"]) == PNG
    sent = await send(
        env.client, "alice", "threads.create", input=message_input("", [alices["id"]])
    )
    assert done_item(frames_of(sent))["content"][0]["text"] == "I received 1 image: cat.png."
