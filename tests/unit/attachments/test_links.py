"""Signed links: valid for what, which attachment and until when they were signed."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from chatrelay.attachments import LinkRefused, LinkSigner, signing_key
from chatrelay.attachments.links import link_url

SIGNER = LinkSigner(signing_key("a-secret"))
NOW = 1_800_000_000.0


def signed(purpose: str = "upload", attachment_id: str = "atc_1") -> tuple[int, str]:
    query = parse_qs(SIGNER.query(purpose, attachment_id, NOW, 300))  # type: ignore[arg-type]
    return int(query["expires"][0]), query["signature"][0]


def test_a_link_verifies_until_it_expires() -> None:
    expires, signature = signed()
    assert expires == NOW + 300
    SIGNER.verify("upload", "atc_1", expires, signature, NOW + 299)
    with pytest.raises(LinkRefused, match="this link has expired"):
        SIGNER.verify("upload", "atc_1", expires, signature, NOW + 300)


@pytest.mark.parametrize(
    ("purpose", "attachment_id", "later", "key"),
    [
        ("preview", "atc_1", 0, b""),  # an upload link is no preview link
        ("upload", "atc_2", 0, b""),  # nor a link to another attachment
        ("upload", "atc_1", 3600, b""),  # nor valid longer than it says
        ("upload", "atc_1", 0, signing_key("another-secret")),  # nor signed by another key
    ],
)
def test_a_link_is_refused_for_anything_else(
    purpose: str, attachment_id: str, later: int, key: bytes
) -> None:
    expires, signature = signed()
    signer = LinkSigner(key) if key else SIGNER
    with pytest.raises(LinkRefused, match="invalid link signature"):
        signer.verify(purpose, attachment_id, expires + later, signature, NOW)  # type: ignore[arg-type]


def test_the_key_is_not_the_token_secret_and_links_name_no_secret() -> None:
    assert signing_key("a-secret") != b"a-secret"
    url = link_url(
        "https://chat.example/", "preview", "atc_1", SIGNER.query("preview", "atc_1", NOW, 60)
    )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "chat.example",
        "/chatkit/attachments/atc_1/preview",
    )
    assert set(parse_qs(parts.query)) == {"expires", "signature"}
    assert "a-secret" not in url


def test_a_signature_that_is_not_ascii_is_refused_not_an_error() -> None:
    """Regression (schemathesis): `hmac.compare_digest` raised TypeError on a non-ASCII str."""
    expires, _ = signed()
    with pytest.raises(LinkRefused, match="invalid link signature"):
        SIGNER.verify("upload", "atc_1", expires, "w\x01LNÂxw", NOW)
