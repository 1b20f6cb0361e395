"""HTTP endpoints providers call: verify, parse, ingest durably, acknowledge. Nothing else."""

from openline.webhooks.routes import ROUTES, accept, accept_status, webhook_request

__all__ = ["ROUTES", "accept", "accept_status", "webhook_request"]
