"""A small, self-contained "payments" MCP server for `relay demo`.

Run it with ``python -m relay.demo.server``. It speaks MCP over stdio:
newline-delimited JSON-RPC 2.0 on stdin/stdout, diagnostics on stderr only.
It uses the standard library only and imports next to nothing, so it starts
fast.

The tools serve fake data from :mod:`relay.demo.data`, which is full of
(published test) cardholder data on purpose: the demo shows the relay masking
it and holding ``refund_payment`` for human approval.

Protocol notes
--------------
* ``initialize`` echoes the client's protocol version when it is one we
  support; otherwise we counter-offer the newest version that is reachable
  through the ``initialize`` handshake (``2025-11-25``). ``2026-07-28`` is
  echoed when asked for, but it is never *offered*: that revision negotiates
  through ``server/discover`` rather than ``initialize``, so offering it to a
  handshake client would strand it. ``server/discover`` itself is not
  implemented (``-32601``), which makes modern clients fall back to
  ``initialize``, exactly as they do for any handshake-era server.
* Protocol errors (bad JSON, bad request shape, unknown method/tool/prompt,
  malformed ``tools/call``) are JSON-RPC errors. Problems with a tool's
  *arguments* and business failures (unknown order, over-refund) are tool
  results with ``isError: true``, per SEP-1303 (spec 2025-11-25), so a model
  can read them and correct itself.
* Requests are handled one at a time, in order. ``notifications/cancelled``
  is accepted silently (by the time it is read, the request has been answered).
* JSON-RPC batches (arrays, part of 2025-03-26 only) are accepted.
* The server never crashes on input: a handler bug becomes ``-32603``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, BinaryIO, Final, TextIO

from relay.demo import data

try:
    from relay import __version__ as _RELAY_VERSION
except Exception:  # pragma: no cover - relay/__init__ is tiny, but never fail to start
    _RELAY_VERSION = "0.0.0"

SERVER_NAME: Final = "relay-demo-payments"
SERVER_TITLE: Final = "Relay demo payments server"
SERVER_VERSION: Final[str] = _RELAY_VERSION

SUPPORTED_PROTOCOL_VERSIONS: Final[tuple[str, ...]] = (
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
)
LATEST_PROTOCOL_VERSION: Final = SUPPORTED_PROTOCOL_VERSIONS[-1]
# Newest version negotiable through `initialize`; the counter-offer for unknown versions.
LATEST_HANDSHAKE_VERSION: Final = "2025-11-25"

# JSON-RPC / MCP error codes.
PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
RESOURCE_NOT_FOUND: Final = -32002

LOG_LEVELS: Final[tuple[str, ...]] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)

INSTRUCTIONS: Final = (
    "Demo payments back office with FAKE data (published test card numbers only). "
    "Use lookup_order, get_customer, list_orders and export_transactions to read orders, "
    "customers and transactions; use refund_payment to refund part or all of a captured order. "
    "Refunds are irreversible: confirm the order, amount and reason first. "
    "Never repeat full card numbers, CVVs or magnetic-stripe data back to the user."
)

MAX_LIST_LIMIT: Final = 50
MAX_EXPORT_LIMIT: Final = 100
MAX_REASON_LEN: Final = 500


class RpcError(Exception):
    """A JSON-RPC error response."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class ToolError(Exception):
    """A tool-level failure, reported as a result with ``isError: true``."""


# ----------------------------------------------------------------------------
# Tool, resource and prompt definitions
# ----------------------------------------------------------------------------

_ORDER_ID_SCHEMA: Final = {
    "type": "string",
    "description": "Order id, e.g. ord_1001.",
    "pattern": "^ord_[0-9]+$",
}

_LOOKUP_ORDER_OUTPUT_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "description": {"type": "string"},
        "customer_id": {"type": "string"},
        "customer_name": {"type": "string"},
        "customer_email": {"type": "string"},
        "amount": {"type": "string", "description": "Decimal amount in major units, e.g. 129.99."},
        "amount_cents": {"type": "integer"},
        "currency": {"type": "string"},
        "refunded_cents": {"type": "integer"},
        "status": {"type": "string"},
        "created": {"type": "string"},
        "card_brand": {"type": "string"},
        "card_number": {"type": "string"},
        "card_expiry": {"type": "string"},
        "entry_mode": {"type": "string"},
        "track2": {"type": "string"},
    },
    "required": [
        "order_id",
        "customer_id",
        "amount",
        "amount_cents",
        "currency",
        "status",
        "card_brand",
        "card_number",
        "card_expiry",
    ],
}

_REFUND_OUTPUT_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "refund_id": {"type": "string"},
        "order_id": {"type": "string"},
        "status": {"type": "string"},
        "amount": {"type": "string"},
        "amount_cents": {"type": "integer"},
        "currency": {"type": "string"},
        "reason": {"type": "string"},
        "card_brand": {"type": "string"},
        "card_last4": {"type": "string"},
        "total_refunded_cents": {"type": "integer"},
        "remaining_cents": {"type": "integer"},
        "order_status": {"type": "string"},
    },
    "required": ["refund_id", "order_id", "status", "amount_cents", "currency"],
}

TOOLS: Final[list[dict[str, Any]]] = [
    {
        "name": "lookup_order",
        "title": "Look up an order",
        "description": (
            "Look up one order by id: amount, status, customer and the card it was paid with. "
            "Returns a text summary plus structured data."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {"order_id": _ORDER_ID_SCHEMA},
            "required": ["order_id"],
            "additionalProperties": False,
        },
        "outputSchema": _LOOKUP_ORDER_OUTPUT_SCHEMA,
        "annotations": {
            "title": "Look up an order",
            "readOnlyHint": True,
            "destructiveHint": False,
            "idempotentHint": True,
            "openWorldHint": False,
        },
    },
    {
        "name": "get_customer",
        "title": "Get a customer",
        "description": "Fetch a customer's profile, including the card on file, as JSON.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "customer_id": {
                    "type": "string",
                    "description": "Customer id, e.g. cus_001.",
                    "pattern": "^cus_[0-9]+$",
                },
            },
            "required": ["customer_id"],
            "additionalProperties": False,
        },
        "annotations": {
            "title": "Get a customer",
            "readOnlyHint": True,
            "destructiveHint": False,
            "idempotentHint": True,
            "openWorldHint": False,
        },
    },
    {
        "name": "list_orders",
        "title": "List recent orders",
        "description": "List recent orders as a Markdown table (order, customer, card, amount, status).",
        "inputSchema": {
            "type": "object",
            "properties": {
                "limit": {
                    "type": "integer",
                    "description": f"Maximum number of orders to return (1-{MAX_LIST_LIMIT}).",
                    "minimum": 1,
                    "maximum": MAX_LIST_LIMIT,
                    "default": 10,
                },
            },
            "additionalProperties": False,
        },
        "annotations": {
            "title": "List recent orders",
            "readOnlyHint": True,
            "destructiveHint": False,
            "idempotentHint": True,
            "openWorldHint": False,
        },
    },
    {
        "name": "refund_payment",
        "title": "Refund a payment",
        "description": (
            "Refund part or all of a captured order back to the original card. "
            "Irreversible: moves money. Amount is in the order's currency, in major units (e.g. 25.00)."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "order_id": _ORDER_ID_SCHEMA,
                "amount": {
                    "type": "number",
                    "description": "Amount to refund in major units, at most 2 decimal places.",
                    "exclusiveMinimum": 0,
                },
                "reason": {
                    "type": "string",
                    "description": "Why the refund is being issued (recorded for audit).",
                    "minLength": 1,
                    "maxLength": MAX_REASON_LEN,
                },
            },
            "required": ["order_id", "amount", "reason"],
            "additionalProperties": False,
        },
        "outputSchema": _REFUND_OUTPUT_SCHEMA,
        "annotations": {
            "title": "Refund a payment",
            "readOnlyHint": False,
            "destructiveHint": True,
            "idempotentHint": False,
            "openWorldHint": True,
        },
    },
    {
        "name": "export_transactions",
        "title": "Export transactions (CSV)",
        "description": "Export charges and refunds as CSV, newest last, including full card details.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "limit": {
                    "type": "integer",
                    "description": f"Maximum number of transactions to export (1-{MAX_EXPORT_LIMIT}).",
                    "minimum": 1,
                    "maximum": MAX_EXPORT_LIMIT,
                    "default": 50,
                },
            },
            "additionalProperties": False,
        },
        "annotations": {
            "title": "Export transactions (CSV)",
            "readOnlyHint": True,
            "destructiveHint": False,
            "idempotentHint": True,
            "openWorldHint": False,
        },
    },
]

_TOOLS_BY_NAME: Final = {t["name"]: t for t in TOOLS}

REFUND_POLICY_URI: Final = "payments://policies/refunds"
CUSTOMER_URI_PREFIX: Final = "payments://customers/"
ORDER_URI_PREFIX: Final = "payments://orders/"

RESOURCE_TEMPLATES: Final[list[dict[str, Any]]] = [
    {
        "uriTemplate": CUSTOMER_URI_PREFIX + "{customer_id}",
        "name": "customer",
        "title": "Customer record",
        "description": "A customer's profile and card on file, as JSON.",
        "mimeType": "application/json",
    },
    {
        "uriTemplate": ORDER_URI_PREFIX + "{order_id}",
        "name": "order",
        "title": "Order record",
        "description": "One order, as JSON.",
        "mimeType": "application/json",
    },
]

PROMPTS: Final[list[dict[str, Any]]] = [
    {
        "name": "review_refund",
        "title": "Review a refund request",
        "description": "Check an order against the refund policy before refunding it.",
        "arguments": [
            {"name": "order_id", "description": "The order to review, e.g. ord_1001.", "required": True},
            {
                "name": "amount",
                "description": "Amount the customer asked for (default: full amount).",
                "required": False,
            },
            {"name": "reason", "description": "The customer's stated reason.", "required": False},
        ],
    },
    {
        "name": "customer_summary",
        "title": "Summarize a customer",
        "description": "Summarize a customer's account and recent orders without exposing card data.",
        "arguments": [
            {"name": "customer_id", "description": "The customer, e.g. cus_001.", "required": True},
        ],
    },
]

_PROMPTS_BY_NAME: Final = {p["name"]: p for p in PROMPTS}


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _tool_error(message: str) -> dict[str, Any]:
    return {"content": [_text(message)], "isError": True}


def _pretty(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False)


def _customer_json(customer: dict[str, Any], orders: list[dict[str, Any]]) -> dict[str, Any]:
    card = customer["card"]
    return {
        "customer_id": customer["id"],
        "name": customer["name"],
        "email": customer["email"],
        "phone": customer["phone"],
        "billing_address": dict(customer["billing_address"]),
        "created": customer["created"],
        "card": {
            "brand": card["brand"],
            "number": card["number"],
            "expiry": data.expiry(card),
            "exp_month": card["exp_month"],
            "exp_year": card["exp_year"],
            "cvv": card["cvv"],
            "cardholder_name": customer["name"],
        },
        "order_ids": [o["id"] for o in orders if o["customer_id"] == customer["id"]],
    }


def _check_arguments(tool: dict[str, Any], args: dict[str, Any]) -> None:
    """Enforce ``required`` and ``additionalProperties: false`` of a tool's input schema."""
    schema = tool["inputSchema"]
    props = schema.get("properties", {})
    unknown = sorted(k for k in args if k not in props)
    if unknown:
        raise ToolError(
            f"Unknown argument(s) for {tool['name']}: {', '.join(unknown)}. "
            f"Accepted: {', '.join(props) or '(none)'}."
        )
    missing = [k for k in schema.get("required", ()) if args.get(k) is None]
    if missing:
        raise ToolError(f"Missing required argument(s) for {tool['name']}: {', '.join(missing)}.")


def _limit_arg(args: dict[str, Any], default: int, maximum: int) -> int:
    value = args.get("limit")
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not _is_int(value):
        raise ToolError(f"'limit' must be an integer between 1 and {maximum}, got {json.dumps(value)}.")
    if not 1 <= value <= maximum:
        raise ToolError(f"'limit' must be between 1 and {maximum}, got {value}.")
    return int(value)


def _string_arg(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str):
        raise ToolError(f"'{name}' must be a string, got {json.dumps(value)}.")
    value = value.strip()
    if not value:
        raise ToolError(f"'{name}' must not be empty.")
    return value


def _amount_cents(value: Any) -> int:
    if not _is_number(value):
        raise ToolError(f"'amount' must be a number (e.g. 25.00), got {json.dumps(value)}.")
    if value != value or value in (float("inf"), float("-inf")):  # NaN / infinity
        raise ToolError("'amount' must be a finite number.")
    if value <= 0:
        raise ToolError("'amount' must be greater than zero.")
    if value > 10**12:
        raise ToolError("'amount' is unreasonably large.")
    cents = round(value * 100)
    if abs(value * 100 - cents) > 1e-6:
        raise ToolError("'amount' can have at most 2 decimal places.")
    return int(cents)


# ----------------------------------------------------------------------------
# The server
# ----------------------------------------------------------------------------


class DemoPaymentsServer:
    """Protocol state and handlers. Transport-free: feed it lines, it returns replies."""

    def __init__(self, log: TextIO | None = None, verbose: bool = False) -> None:
        self._log_stream = log
        self._verbose = verbose
        self.protocol_version: str | None = None
        self.client_info: dict[str, Any] | None = None
        self.initialized = False
        self.log_level: str | None = None
        # Mutable copies of the fixtures: refunds change order state for the session.
        self.orders: list[dict[str, Any]] = [dict(o) for o in data.ORDERS]
        self.orders_by_id: dict[str, dict[str, Any]] = {o["id"]: o for o in self.orders}
        self.refunds: list[dict[str, Any]] = []
        for order in self.orders:
            if order["refunded_cents"]:
                self.refunds.append(
                    {
                        "id": f"re_{len(self.refunds) + 1:04d}",
                        "order_id": order["id"],
                        "amount_cents": order["refunded_cents"],
                        "currency": order["currency"],
                        "reason": "requested_by_customer",
                        "created": order["created"],
                    }
                )
        # Notifications queued by handlers, flushed before the response they belong to.
        self._outbox: list[dict[str, Any]] = []
        self._methods = {
            "initialize": self._initialize,
            "ping": self._ping,
            "tools/list": self._tools_list,
            "tools/call": self._tools_call,
            "resources/list": self._resources_list,
            "resources/templates/list": self._resource_templates_list,
            "resources/read": self._resources_read,
            "prompts/list": self._prompts_list,
            "prompts/get": self._prompts_get,
            "logging/setLevel": self._logging_set_level,
        }
        self._tools = {
            "lookup_order": self._tool_lookup_order,
            "get_customer": self._tool_get_customer,
            "list_orders": self._tool_list_orders,
            "refund_payment": self._tool_refund_payment,
            "export_transactions": self._tool_export_transactions,
        }

    # -- diagnostics (stderr) ---------------------------------------------

    def log(self, message: str) -> None:
        if self._log_stream is None:
            return
        try:
            self._log_stream.write(f"[{SERVER_NAME}] {message}\n")
            self._log_stream.flush()
        except Exception:  # stderr gone: nothing useful to do
            pass

    def debug(self, message: str) -> None:
        if self._verbose:
            self.log(message)

    def notify_log(self, level: str, payload: Any) -> None:
        """Queue an MCP ``notifications/message`` if the client asked for this level."""
        if self.log_level is None or LOG_LEVELS.index(level) < LOG_LEVELS.index(self.log_level):
            return
        self._outbox.append(
            {
                "jsonrpc": "2.0",
                "method": "notifications/message",
                "params": {"level": level, "logger": "payments", "data": payload},
            }
        )

    # -- framing ----------------------------------------------------------

    def handle_line(self, line: bytes | str) -> list[Any]:
        """Handle one line of input; return the messages to write, in order."""
        self._outbox = []
        try:
            text = line.decode("utf-8") if isinstance(line, bytes) else line
        except UnicodeDecodeError:
            self.log("discarding a line that is not valid UTF-8")
            return [_error_response(None, PARSE_ERROR, "Parse error: input is not valid UTF-8")]
        text = text.strip().lstrip("\ufeff")
        if not text:
            return []
        try:
            message = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            self.log(f"discarding malformed JSON line ({type(exc).__name__})")
            return [_error_response(None, PARSE_ERROR, "Parse error: invalid JSON")]

        if isinstance(message, list):
            if not message:
                return [_error_response(None, INVALID_REQUEST, "Invalid Request: empty batch")]
            replies: list[Any] = []
            batch: list[Any] = []
            for item in message:
                reply = self.handle_message(item)
                replies.extend(self._outbox)
                self._outbox = []
                if reply is not None:
                    batch.append(reply)
            if batch:
                replies.append(batch)
            return replies

        reply = self.handle_message(message)
        replies = list(self._outbox)
        self._outbox = []
        if reply is not None:
            replies.append(reply)
        return replies

    def handle_message(self, message: Any) -> dict[str, Any] | None:
        """Handle one decoded JSON-RPC message; return the response, or None for notifications."""
        if not isinstance(message, dict):
            return _error_response(None, INVALID_REQUEST, "Invalid Request: expected a JSON object")
        has_id = "id" in message
        msg_id = message.get("id")
        id_ok = isinstance(msg_id, str) or _is_number(msg_id)
        reply_id = msg_id if id_ok else None
        method = message.get("method")

        if method is None and has_id and ("result" in message or "error" in message):
            # A response to a server->client request. We never send any; ignore it.
            self.debug(f"ignoring unexpected response message id={msg_id!r}")
            return None
        if message.get("jsonrpc") != "2.0":
            return _error_response(reply_id, INVALID_REQUEST, "Invalid Request: 'jsonrpc' must be \"2.0\"")
        if not isinstance(method, str):
            return _error_response(reply_id, INVALID_REQUEST, "Invalid Request: 'method' must be a string")

        params = message.get("params")
        if not has_id:
            self._notification(method, params)
            return None
        if not id_ok:
            return _error_response(
                None, INVALID_REQUEST, "Invalid Request: 'id' must be a string or an integer"
            )

        self.debug(f"request {method} id={msg_id!r}")
        handler = self._methods.get(method)
        if handler is None:
            return _error_response(msg_id, METHOD_NOT_FOUND, f"Method not found: {method}")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            return _error_response(msg_id, INVALID_PARAMS, "Invalid params: 'params' must be an object")
        try:
            result = handler(params)
        except RpcError as exc:
            return _error_response(msg_id, exc.code, exc.message, exc.data)
        except Exception as exc:  # a bug in a handler must not take the server down
            self.log(f"internal error in {method}: {type(exc).__name__}: {exc}")
            return _error_response(msg_id, INTERNAL_ERROR, "Internal error")
        return {"jsonrpc": "2.0", "id": msg_id, "result": result}

    def _notification(self, method: str, params: Any) -> None:
        if method == "notifications/initialized":
            self.initialized = True
            self.debug("client initialized")
        elif method == "notifications/cancelled":
            # Requests are answered synchronously, so there is never anything left to cancel.
            self.debug("cancellation received (nothing in flight)")
        else:
            # Unknown notifications are ignored, as JSON-RPC requires (no reply to notifications).
            self.debug(f"ignoring notification {method}")

    # -- lifecycle ----------------------------------------------------------

    def _initialize(self, params: dict[str, Any]) -> dict[str, Any]:
        requested = params.get("protocolVersion")
        if not isinstance(requested, str):
            raise RpcError(INVALID_PARAMS, "Invalid params: 'protocolVersion' must be a string")
        for key in ("capabilities", "clientInfo"):
            if key in params and not isinstance(params[key], dict):
                raise RpcError(INVALID_PARAMS, f"Invalid params: '{key}' must be an object")
        negotiated = requested if requested in SUPPORTED_PROTOCOL_VERSIONS else LATEST_HANDSHAKE_VERSION
        self.protocol_version = negotiated
        self.client_info = params.get("clientInfo")
        name = (self.client_info or {}).get("name", "?")
        self.log(f"initialize from client {name!s:.60} (asked {requested!s:.32}, speaking {negotiated})")
        return {
            "protocolVersion": negotiated,
            "capabilities": {
                "tools": {"listChanged": False},
                "resources": {"subscribe": False, "listChanged": False},
                "prompts": {"listChanged": False},
                "logging": {},
            },
            "serverInfo": {"name": SERVER_NAME, "title": SERVER_TITLE, "version": SERVER_VERSION},
            "instructions": INSTRUCTIONS,
        }

    def _ping(self, params: dict[str, Any]) -> dict[str, Any]:
        return {}

    def _logging_set_level(self, params: dict[str, Any]) -> dict[str, Any]:
        level = params.get("level")
        if level not in LOG_LEVELS:
            raise RpcError(
                INVALID_PARAMS,
                f"Invalid params: 'level' must be one of {', '.join(LOG_LEVELS)}",
            )
        self.log_level = level
        return {}

    @staticmethod
    def _check_cursor(params: dict[str, Any]) -> None:
        # Everything fits in one page, so we never hand out cursors; any cursor is invalid.
        if params.get("cursor") is not None:
            raise RpcError(INVALID_PARAMS, "Invalid params: unknown cursor")

    # -- tools --------------------------------------------------------------

    def _tools_list(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_cursor(params)
        return {"tools": TOOLS}

    def _tools_call(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("name")
        if not isinstance(name, str):
            raise RpcError(INVALID_PARAMS, "Invalid params: 'name' must be a string")
        args = params.get("arguments")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise RpcError(INVALID_PARAMS, "Invalid params: 'arguments' must be an object")
        tool = _TOOLS_BY_NAME.get(name)
        if tool is None:
            raise RpcError(INVALID_PARAMS, f"Unknown tool: {name}", {"tool": name})
        self.notify_log("info", f"tools/call {name}")
        try:
            _check_arguments(tool, args)
            return self._tools[name](args)
        except ToolError as exc:
            return _tool_error(str(exc))

    def _order(self, args: dict[str, Any]) -> dict[str, Any]:
        order_id = _string_arg(args, "order_id").lower()
        order = self.orders_by_id.get(order_id)
        if order is None:
            known = ", ".join(self.orders_by_id)
            raise ToolError(f"Order '{order_id}' not found. Known orders: {known}.")
        return order

    def _tool_lookup_order(self, args: dict[str, Any]) -> dict[str, Any]:
        order = self._order(args)
        customer = data.CUSTOMERS[order["customer_id"]]
        card = customer["card"]
        lines = [
            f"Order {order['id']}: {order['description']}",
            f"Customer: {customer['name']} <{customer['email']}> ({customer['id']})",
            f"Amount: {data.money(order['amount_cents'], order['currency'])}"
            f" (refunded {data.money(order['refunded_cents'], order['currency'])})",
            f"Status: {order['status']}",
            f"Created: {order['created']}",
            f"Card: {card['brand']} {data.group_pan(order['card_number'])}, expires {data.expiry(card)}",
            f"Entry mode: {order['entry_mode']}",
        ]
        structured: dict[str, Any] = {
            "order_id": order["id"],
            "description": order["description"],
            "customer_id": customer["id"],
            "customer_name": customer["name"],
            "customer_email": customer["email"],
            "amount": data.decimal_amount(order["amount_cents"]),
            "amount_cents": order["amount_cents"],
            "currency": order["currency"],
            "refunded_cents": order["refunded_cents"],
            "status": order["status"],
            "created": order["created"],
            "card_brand": card["brand"],
            "card_number": order["card_number"],
            "card_expiry": data.expiry(card),
            "entry_mode": order["entry_mode"],
        }
        if order.get("track2"):
            lines.append(f"Track 2 (as captured at the terminal): {order['track2']}")
            structured["track2"] = order["track2"]
        return {
            # The serialized JSON block is what pre-2025-06-18 clients see of structuredContent.
            "content": [_text("\n".join(lines)), _text(json.dumps(structured, ensure_ascii=False))],
            "structuredContent": structured,
            "isError": False,
        }

    def _tool_get_customer(self, args: dict[str, Any]) -> dict[str, Any]:
        customer_id = _string_arg(args, "customer_id").lower()
        customer = data.CUSTOMERS.get(customer_id)
        if customer is None:
            raise ToolError(
                f"Customer '{customer_id}' not found. Known customers: {', '.join(data.CUSTOMERS)}."
            )
        return {"content": [_text(_pretty(_customer_json(customer, self.orders)))], "isError": False}

    def _tool_list_orders(self, args: dict[str, Any]) -> dict[str, Any]:
        limit = _limit_arg(args, default=10, maximum=MAX_LIST_LIMIT)
        rows = self.orders[-limit:][::-1]  # newest first
        out = [
            f"Showing {len(rows)} of {len(self.orders)} orders (newest first).",
            "",
            "| Order | Customer | Card | Amount | Status | Created |",
            "|---|---|---|---|---|---|",
        ]
        for i, order in enumerate(rows):
            customer = data.CUSTOMERS[order["customer_id"]]
            # Cycle through the formats card numbers really show up in: spaces, dashes, contiguous.
            fmt = i % 3
            if fmt == 0:
                pan = data.group_pan(order["card_number"], " ")
            elif fmt == 1:
                pan = data.group_pan(order["card_number"], "-")
            else:
                pan = order["card_number"]
            out.append(
                f"| {order['id']} | {customer['name']} | {customer['card']['brand']} {pan} "
                f"| {data.money(order['amount_cents'], order['currency'])} | {order['status']} "
                f"| {order['created'][:10]} |"
            )
        return {"content": [_text("\n".join(out))], "isError": False}

    def _tool_refund_payment(self, args: dict[str, Any]) -> dict[str, Any]:
        order = self._order(args)
        cents = _amount_cents(args.get("amount"))
        reason = _string_arg(args, "reason")
        if len(reason) > MAX_REASON_LEN:
            raise ToolError(f"'reason' must be at most {MAX_REASON_LEN} characters.")
        currency = order["currency"]
        if order["status"] == "authorized":
            raise ToolError(
                f"Order {order['id']} is only authorized, not captured: there is nothing to refund "
                "(void the authorization instead)."
            )
        remaining = order["amount_cents"] - order["refunded_cents"]
        if remaining <= 0:
            raise ToolError(f"Order {order['id']} has already been fully refunded.")
        if cents > remaining:
            raise ToolError(
                f"Refund of {data.money(cents, currency)} exceeds the refundable balance of "
                f"{data.money(remaining, currency)} on order {order['id']}."
            )
        refund_id = f"re_{len(self.refunds) + 1:04d}"
        order["refunded_cents"] += cents
        remaining -= cents
        order["status"] = "refunded" if remaining == 0 else "partially_refunded"
        self.refunds.append(
            {
                "id": refund_id,
                "order_id": order["id"],
                "amount_cents": cents,
                "currency": currency,
                "reason": reason,
                "created": "2025-01-31T12:00:00Z",
            }
        )
        customer = data.CUSTOMERS[order["customer_id"]]
        brand, last4 = customer["card"]["brand"], order["card_number"][-4:]
        self.notify_log(
            "notice",
            {
                "event": "refund",
                "refund_id": refund_id,
                "order_id": order["id"],
                "amount_cents": cents,
                "currency": currency,
            },
        )
        text = (
            f"Refund {refund_id} succeeded: {data.money(cents, currency)} returned to {brand} ending {last4} "
            f"for order {order['id']} ({customer['name']}).\n"
            f"Reason: {reason}\n"
            f"Refunded so far: {data.money(order['refunded_cents'], currency)} of "
            f"{data.money(order['amount_cents'], currency)}; remaining {data.money(remaining, currency)}. "
            f"Order status: {order['status']}."
        )
        structured = {
            "refund_id": refund_id,
            "order_id": order["id"],
            "status": "succeeded",
            "amount": data.decimal_amount(cents),
            "amount_cents": cents,
            "currency": currency,
            "reason": reason,
            "card_brand": brand,
            "card_last4": last4,
            "total_refunded_cents": order["refunded_cents"],
            "remaining_cents": remaining,
            "order_status": order["status"],
        }
        return {
            "content": [_text(text), _text(json.dumps(structured, ensure_ascii=False))],
            "structuredContent": structured,
            "isError": False,
        }

    def _tool_export_transactions(self, args: dict[str, Any]) -> dict[str, Any]:
        import csv  # lazily: only this tool needs it
        import io

        limit = _limit_arg(args, default=50, maximum=MAX_EXPORT_LIMIT)
        rows: list[tuple[str, ...]] = []
        for order in self.orders:
            rows.append(
                self._txn_row(
                    f"txn_{order['id'][4:]}",
                    "charge",
                    order,
                    order["amount_cents"],
                    order["created"],
                    order["status"],
                )
            )
        for refund in self.refunds:
            order = self.orders_by_id[refund["order_id"]]
            rows.append(
                self._txn_row(
                    refund["id"], "refund", order, -refund["amount_cents"], refund["created"], "succeeded"
                )
            )
        rows.sort(key=lambda r: r[3])  # by created timestamp, oldest first
        rows = rows[-limit:]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(
            [
                "transaction_id",
                "type",
                "order_id",
                "created",
                "customer_id",
                "customer_name",
                "email",
                "card_brand",
                "card_number",
                "card_expiry",
                "amount",
                "currency",
                "status",
            ]
        )
        writer.writerows(rows)
        return {"content": [_text(buf.getvalue())], "isError": False}

    @staticmethod
    def _txn_row(
        txn_id: str, kind: str, order: dict[str, Any], cents: int, created: str, status: str
    ) -> tuple[str, ...]:
        customer = data.CUSTOMERS[order["customer_id"]]
        card = customer["card"]
        return (
            txn_id,
            kind,
            order["id"],
            created,
            customer["id"],
            customer["name"],
            customer["email"],
            card["brand"],
            order["card_number"],
            data.expiry(card),
            data.decimal_amount(cents),
            order["currency"],
            status,
        )

    # -- resources ------------------------------------------------------------

    def _resources_list(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_cursor(params)
        resources: list[dict[str, Any]] = [
            {
                "uri": REFUND_POLICY_URI,
                "name": "refund-policy",
                "title": "Refund policy",
                "description": "The rules refunds must follow.",
                "mimeType": "text/markdown",
            }
        ]
        for customer in data.CUSTOMERS.values():
            resources.append(
                {
                    "uri": CUSTOMER_URI_PREFIX + customer["id"],
                    "name": f"customer-{customer['id']}",
                    "title": f"Customer {customer['name']}",
                    "description": "Customer profile and card on file (JSON).",
                    "mimeType": "application/json",
                }
            )
        return {"resources": resources}

    def _resource_templates_list(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_cursor(params)
        return {"resourceTemplates": RESOURCE_TEMPLATES}

    def _resources_read(self, params: dict[str, Any]) -> dict[str, Any]:
        uri = params.get("uri")
        if not isinstance(uri, str):
            raise RpcError(INVALID_PARAMS, "Invalid params: 'uri' must be a string")
        if uri == REFUND_POLICY_URI:
            return {"contents": [{"uri": uri, "mimeType": "text/markdown", "text": data.REFUND_POLICY}]}
        if uri.startswith(CUSTOMER_URI_PREFIX):
            customer = data.CUSTOMERS.get(uri[len(CUSTOMER_URI_PREFIX) :])
            if customer is not None:
                body = _pretty(_customer_json(customer, self.orders))
                return {"contents": [{"uri": uri, "mimeType": "application/json", "text": body}]}
        if uri.startswith(ORDER_URI_PREFIX):
            order = self.orders_by_id.get(uri[len(ORDER_URI_PREFIX) :])
            if order is not None:
                result = self._tool_lookup_order({"order_id": order["id"]})
                body = _pretty(result["structuredContent"])
                return {"contents": [{"uri": uri, "mimeType": "application/json", "text": body}]}
        raise RpcError(RESOURCE_NOT_FOUND, "Resource not found", {"uri": uri})

    # -- prompts --------------------------------------------------------------

    def _prompts_list(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_cursor(params)
        return {"prompts": PROMPTS}

    def _prompts_get(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("name")
        if not isinstance(name, str):
            raise RpcError(INVALID_PARAMS, "Invalid params: 'name' must be a string")
        prompt = _PROMPTS_BY_NAME.get(name)
        if prompt is None:
            raise RpcError(INVALID_PARAMS, f"Unknown prompt: {name}", {"prompt": name})
        args = params.get("arguments")
        if args is None:
            args = {}
        if not isinstance(args, dict) or not all(isinstance(v, str) for v in args.values()):
            raise RpcError(INVALID_PARAMS, "Invalid params: 'arguments' must map names to strings")
        for spec in prompt["arguments"]:
            if spec.get("required") and not args.get(spec["name"], "").strip():
                raise RpcError(INVALID_PARAMS, f"Missing required argument: {spec['name']}")

        if name == "review_refund":
            order_id = args["order_id"].strip()
            amount = args.get("amount", "").strip() or "the full amount"
            reason = args.get("reason", "").strip() or "not given"
            text = (
                f"A customer asked for a refund of {amount} on order {order_id} (reason: {reason}).\n"
                f"1. Call lookup_order for {order_id} and check its status and refundable balance.\n"
                f"2. Read the refund policy resource {REFUND_POLICY_URI}.\n"
                "3. Only if the policy allows it, call refund_payment with the amount and a clear reason.\n"
                "Do not repeat card numbers, expiry dates or CVVs in your answer."
            )
            description = f"Review a refund request for {order_id}"
        else:
            customer_id = args["customer_id"].strip()
            text = (
                f"Summarize the account of customer {customer_id}: call get_customer, then lookup_order for "
                "each of their orders. Report totals and statuses. Refer to the card only by brand and "
                "last four digits; never include full card numbers, expiry dates or CVVs."
            )
            description = f"Summarize customer {customer_id}"
        return {"description": description, "messages": [{"role": "user", "content": _text(text)}]}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _error_response(msg_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": msg_id, "error": error}


def _encode(message: Any) -> bytes:
    return (json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


# ----------------------------------------------------------------------------
# stdio loop
# ----------------------------------------------------------------------------

_USAGE: Final = """\
usage: python -m relay.demo.server [--quiet | --verbose]

Demo "payments" MCP server (fake data) speaking MCP over stdio.
  --quiet    no diagnostics on stderr
  --verbose  log every request on stderr
"""


def serve(stdin: BinaryIO, stdout: BinaryIO, server: DemoPaymentsServer) -> None:
    """Read newline-delimited JSON-RPC from ``stdin`` until EOF, writing replies to ``stdout``."""
    while True:
        line = stdin.readline()
        if not line:
            return  # EOF: the client has gone; exit cleanly
        try:
            replies = server.handle_line(line)
        except Exception as exc:  # belt and braces: handle_line already catches handler errors
            server.log(f"internal error: {type(exc).__name__}: {exc}")
            replies = [_error_response(None, INTERNAL_ERROR, "Internal error")]
        for reply in replies:
            stdout.write(_encode(reply))
        if replies:
            stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    quiet = os.environ.get("RELAY_DEMO_QUIET", "") not in ("", "0")
    verbose = False
    for arg in args:
        if arg in ("-h", "--help"):
            sys.stderr.write(_USAGE)
            return 0
        if arg in ("-q", "--quiet"):
            quiet = True
        elif arg in ("-v", "--verbose"):
            verbose = True
        else:
            sys.stderr.write(f"[{SERVER_NAME}] ignoring unknown argument {arg!r}\n")

    out = sys.stdout.buffer
    # stdout carries the protocol only: anything print()ed by accident goes to stderr.
    sys.stdout = sys.stderr
    server = DemoPaymentsServer(log=None if quiet else sys.stderr, verbose=verbose and not quiet)
    server.log(f"v{SERVER_VERSION} ready on stdio (fake data, published test cards only)")
    try:
        serve(sys.stdin.buffer, out, server)
    except KeyboardInterrupt:
        return 0
    except (BrokenPipeError, ConnectionResetError):
        # The client closed our stdout; point fd 1 at /dev/null so the interpreter's
        # final flush does not complain, and exit quietly.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        except OSError:
            pass
        return 0
    server.log("stdin closed; exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
