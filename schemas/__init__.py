"""JSON Schema files: the JSON-RPC 2.0 envelope and the params of each built-in tool.

Installed as package data and read with :mod:`importlib.resources`.
"""
