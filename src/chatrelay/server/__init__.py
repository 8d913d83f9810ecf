"""The HTTP server: app factory, routes, SSE, errors and middleware."""

from chatrelay.server.app import create_app

__all__ = ["create_app"]
