"""Async client for JSON-RPC 2.0 over WebSocket (in progress)."""
