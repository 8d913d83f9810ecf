"""Attachments: files a user sends with a message, on chatrelay's own storage.

The rows live in the database (`store`), the bytes in an object store (obstore: a local
directory, or any S3-compatible store shared by every instance). Uploads and previews go to
signed, expiring links (`links`); the bytes are checked against their declared type
(`content`). Below the wire formats: `chatkit` maps these to ChatKit's attachments, the
server only carries the bytes.
"""

from chatrelay.attachments.errors import LinkRefused, TooLarge, UnsupportedType
from chatrelay.attachments.links import ROUTE_PREFIX, LinkSigner, signing_key
from chatrelay.attachments.objects import ObjectFiles, open_object_store
from chatrelay.attachments.service import (
    AttachmentLimits,
    AttachmentService,
    Preview,
    attachment_service,
    ref_of,
)

__all__ = [
    "ROUTE_PREFIX",
    "AttachmentLimits",
    "AttachmentService",
    "LinkRefused",
    "LinkSigner",
    "ObjectFiles",
    "Preview",
    "TooLarge",
    "UnsupportedType",
    "attachment_service",
    "open_object_store",
    "ref_of",
    "signing_key",
]
