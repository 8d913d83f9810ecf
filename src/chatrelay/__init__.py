"""chatrelay: a streaming-first, ChatKit-compatible chat server."""

__version__ = "0.1.0"
