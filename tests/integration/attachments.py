"""Attachment helpers: an S3-compatible server (moto's, on 127.0.0.1) and the requests a
ChatKit widget sends to create, upload and send attachments."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from tests.conftest import auth

S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API (moto's server mode) for the session, on a free local port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def new_bucket(endpoint: str) -> str:
    bucket = f"chatrelay-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    client.create_bucket(Bucket=bucket)
    return bucket


def message_input(text: str, attachments: list[str]) -> dict[str, Any]:
    return {
        "content": [{"type": "input_text", "text": text}] if text else [],
        "attachments": attachments,
        "inference_options": {},
    }


async def send(client: httpx.AsyncClient, user: str, kind: str, **params: Any) -> httpx.Response:
    return await client.post("/chatkit", json={"type": kind, "params": params}, headers=auth(user))


async def create(
    client: httpx.AsyncClient, user: str, name: str, data: bytes, mime_type: str
) -> dict[str, Any]:
    response = await send(
        client, user, "attachments.create", name=name, size=len(data), mime_type=mime_type
    )
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


async def upload(
    client: httpx.AsyncClient, url: str, data: bytes, *, method: str = "POST", name: str = "f"
) -> httpx.Response:
    """As chatkit-js does: multipart form data (field `file`) for POST, raw bytes for PUT;
    no Authorization header."""
    if method == "POST":
        return await client.post(url, files={"file": (name, data)})
    return await client.put(url, content=data)


async def uploaded(
    client: httpx.AsyncClient, user: str, name: str, data: bytes, mime_type: str
) -> dict[str, Any]:
    created = await create(client, user, name, data, mime_type)
    response = await upload(client, created["upload_descriptor"]["url"], data, name=name)
    assert response.status_code == 200, response.text
    return created
