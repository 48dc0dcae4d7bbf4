"""Specifications published on npm, installed from node/package-lock.json: the OpenRPC meta-schema."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from referencing import Registry
from referencing.jsonschema import DRAFT7

NODE_DIR = Path(__file__).parent / "node"
NPM_INSTALL = ["npm", "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--loglevel=error"]
_OPENRPC = NODE_DIR / "node_modules" / "@open-rpc" / "meta-schema"
_JSON_SCHEMA_TOOLS = NODE_DIR / "node_modules" / "@json-schema-tools" / "meta-schema" / "schema.json"


def _ensure_node_modules() -> None:
    if _OPENRPC.is_dir() and _JSON_SCHEMA_TOOLS.is_file():
        return
    if shutil.which("npm") is None:
        pytest.fail("these tests need Node.js with npm, to install the OpenRPC meta-schema (tests/rpc_server/node)")
    subprocess.run(NPM_INSTALL, check=True, timeout=300, stdout=subprocess.DEVNULL)


@functools.cache
def openrpc_validator() -> Draft7Validator:
    """A validator for OpenRPC documents: the official meta-schema, and the JSON Schema meta-schema it refers to."""
    _ensure_node_modules()
    # The package ships the schema as a CommonJS module; Node prints it as JSON.
    printed = subprocess.run(
        ["node", "-e", "process.stdout.write(JSON.stringify(require('@open-rpc/meta-schema').default))"],
        cwd=NODE_DIR,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    meta: dict[str, Any] = json.loads(printed)
    tools = json.loads(_JSON_SCHEMA_TOOLS.read_text("utf-8"))
    # Both declare a dialect of their own ("https://meta.json-schema.tools/"): it is draft-07's.
    registry: Registry[Any] = Registry().with_resources(
        [(meta["$id"], DRAFT7.create_resource(meta)), (tools["$id"], DRAFT7.create_resource(tools))]
    )
    registry = registry.with_resource("https://meta.json-schema.tools", DRAFT7.create_resource(tools))
    Draft7Validator.check_schema(meta)
    return Draft7Validator(meta, registry=registry)


def openrpc_errors(document: Any) -> list[str]:
    """What the OpenRPC meta-schema finds wrong with ``document``, one line each."""
    found = openrpc_validator().iter_errors(document)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in found]
