"""The HTTP layer: a thin FastAPI app over the domain."""

from openline.web.app import create_app

__all__ = ["create_app"]
