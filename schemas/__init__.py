"""JSON Schema files: the JSON-RPC 2.0 envelope and the params of each built-in tool.

Installed as the package ``rpc_server.schemas`` (never as a top-level
``schemas``, which would clash with a user's own module of that name) and
read with :mod:`importlib.resources`.
"""
