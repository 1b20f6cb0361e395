"""Storage: schema, connections, migrations and the group-commit writer."""

from openline.db.engine import Database, DatabaseError, describe_url
from openline.db.migrate import SchemaState, SchemaStatus, ensure_current, schema_status, upgrade
from openline.db.writer import Writer, WriterClosed

__all__ = [
    "Database",
    "DatabaseError",
    "SchemaState",
    "SchemaStatus",
    "Writer",
    "WriterClosed",
    "describe_url",
    "ensure_current",
    "schema_status",
    "upgrade",
]
