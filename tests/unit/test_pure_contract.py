"""The contract (``schemas/``) does no I/O: no module of it imports a Kafka,
database, HTTP or S3 client or imports modules by name, and none opens a file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
CLIENTS = {"aiokafka", "confluent_kafka", "pymongo", "motor", "httpx", "aioboto3", "boto3", "botocore", "importlib", "socket"}
FILE_CALLS = {"open", "read_text", "write_text", "read_bytes", "write_bytes"}


def modules() -> list[Path]:
    return sorted(SCHEMAS.rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(SCHEMAS)))
def test_a_contract_module_does_no_io(path):
    tree = ast.parse(path.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    called = {
        node.func.id if isinstance(node.func, ast.Name) else node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
    }

    assert not imported & CLIENTS, f"{path.name} imports {sorted(imported & CLIENTS)}"
    assert not called & FILE_CALLS, f"{path.name} calls {sorted(called & FILE_CALLS)}"
