"""Error codes this server answers with, and their standard messages.

The first five are the JSON-RPC 2.0 specification's own (section 5.1).
-32800 is LSP's RequestCancelled, for a call cancelled by ``rpc.cancel``;
-32001 to -32005 and -32010 are ours, in the range the specification leaves
to implementations: -32004 as in the security issue's table (a caller calling
a tool its credential does not grant); -32002, -32003 and -32005 for the
limits of issue 9 (see docs/limits.md); -32010 for a subscription that the
event broker cannot serve while it is unreachable.
The application codes belong to the built-in tools; they sit outside the
range -32768..-32000 that the specification reserves.
"""

from __future__ import annotations

__all__ = [
    "BROKER_UNAVAILABLE",
    "CALL_TIMED_OUT",
    "DIVISION_BY_ZERO",
    "FORBIDDEN",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "MESSAGES",
    "METHOD_NOT_FOUND",
    "NOT_FINITE",
    "PARSE_ERROR",
    "RATE_LIMITED",
    "REQUEST_CANCELLED",
    "RESPONSE_TOO_LARGE",
    "RESULT_TOO_LARGE",
    "TOO_MANY_SUBSCRIPTIONS",
]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
REQUEST_CANCELLED = -32800
TOO_MANY_SUBSCRIPTIONS = -32001
CALL_TIMED_OUT = -32002
RESPONSE_TOO_LARGE = -32003
FORBIDDEN = -32004
RATE_LIMITED = -32005
BROKER_UNAVAILABLE = -32010

DIVISION_BY_ZERO = 1001
RESULT_TOO_LARGE = 1002
NOT_FINITE = 1003

MESSAGES: dict[int, str] = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    REQUEST_CANCELLED: "Request cancelled",
    TOO_MANY_SUBSCRIPTIONS: "Too many subscriptions",
    CALL_TIMED_OUT: "Call timed out",
    RESPONSE_TOO_LARGE: "Response too large",
    FORBIDDEN: "Forbidden",
    RATE_LIMITED: "Rate limited",
    BROKER_UNAVAILABLE: "Event broker unavailable",
    DIVISION_BY_ZERO: "Division by zero",
    RESULT_TOO_LARGE: "Result too large",
    NOT_FINITE: "Result is not a finite real number",
}
