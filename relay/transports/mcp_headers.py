"""The HTTP headers that mirror JSON-RPC content (MCP 2026-07-28, SEP-2243): Mcp-Method, Mcp-Name, Mcp-Param-*.

A relay that builds requests for a Streamable HTTP server must set them exactly as the body says, or a
2026-07-28 server refuses the request (400, -32020 HeaderMismatch).
"""

from __future__ import annotations

import base64
from typing import Any

VERSION_META = "io.modelcontextprotocol/protocolVersion"
_NAME_PARAM = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


def header_value(value: str) -> str:
    """Plain visible ASCII as is; anything else in the `=?base64?...?=` sentinel form."""
    plain = (
        value.isascii() and value.isprintable() and value == value.strip()
        and not (value.startswith("=?base64?") and value.endswith("?="))
    )
    return value if plain else "=?base64?" + base64.b64encode(value.encode("utf-8")).decode("ascii") + "?="


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return header_value(value)
    return None


def param_headers_of(schema: Any) -> dict[str, tuple[str, ...]]:
    """Header name -> argument path, for every `x-mcp-header` property reachable by `properties` alone."""
    found: dict[str, tuple[str, ...]] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        props = node.get("properties") if isinstance(node, dict) else None
        if not isinstance(props, dict):
            return
        for key, sub in props.items():
            if not isinstance(sub, dict):
                continue
            name = sub.get("x-mcp-header")
            if isinstance(name, str) and name:
                found[name] = (*path, key)
            walk(sub, (*path, key))

    walk(schema, ())
    return found


class HeaderMirror:
    """Learns tools' `x-mcp-header` arguments from tools/list results and builds the mirrored headers."""

    def __init__(self) -> None:
        self._params: dict[str, dict[str, tuple[str, ...]]] = {}

    def learn_tools(self, result: Any) -> None:
        tools = result.get("tools") if isinstance(result, dict) else None
        if not isinstance(tools, list):
            return
        for tool in tools:
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                mapping = param_headers_of(tool.get("inputSchema"))
                if mapping:
                    self._params[tool["name"]] = mapping
                else:
                    self._params.pop(tool["name"], None)

    def params_of(self, tool: str) -> dict[str, tuple[str, ...]]:
        return self._params.get(tool, {})

    def headers(self, method: str, params: dict[str, Any]) -> dict[str, str]:
        out = {"mcp-method": header_value(method)}
        key = _NAME_PARAM.get(method)
        if key is None:
            return out
        name = params.get(key)
        if isinstance(name, str):
            out["mcp-name"] = header_value(name)
        if method == "tools/call" and isinstance(name, str) and name in self._params:
            args = params.get("arguments")
            for header, path in self._params[name].items():
                value: Any = args
                for part in path:
                    value = value.get(part) if isinstance(value, dict) else None
                text = _scalar(value) if value is not None else None
                if text is not None:
                    out[f"mcp-param-{header.lower()}"] = text
        return out


def request_version(params: dict[str, Any]) -> str | None:
    """The protocol version a 2026-07-28 request declares in its own `_meta`."""
    meta = params.get("_meta")
    version = meta.get(VERSION_META) if isinstance(meta, dict) else None
    return version if isinstance(version, str) and version.isascii() else None


HEADER_MISMATCH = -32020
_OWS = " \t"


def decode_header_value(value: str) -> str | None:
    """The value a mirrored header stands for (sentinel decoded, surrounding whitespace dropped); None if invalid."""
    value = value.strip(_OWS)
    if value.startswith("=?base64?") and value.endswith("?=") and len(value) >= 11:
        payload = value[9:-2]
        try:
            return base64.b64decode(payload, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
    return value


def _same(header: str, body_value: Any) -> bool:
    decoded = decode_header_value(header)
    if decoded is None:
        return False
    if isinstance(body_value, bool):
        return decoded == ("true" if body_value else "false")
    if isinstance(body_value, int):
        try:
            return int(decoded) == body_value
        except ValueError:
            return False
    return bool(decoded == body_value)


def mismatch(headers: dict[str, str], method: str, params: dict[str, Any], mirror: HeaderMirror) -> str | None:
    """Why the mirrored headers of a 2026-07-28 request disagree with its body, or None when they agree.

    `headers` has lower-case names. Relay checks what it can before forwarding, as the spec asks of any
    party that reads the body: it rebuilds the headers for the upstream from the body afterwards.
    """
    declared = request_version(params)
    if declared is not None and headers.get("mcp-protocol-version", "").strip(_OWS) != declared:
        return "MCP-Protocol-Version header does not match _meta protocolVersion"
    got = headers.get("mcp-method")
    if got is None:
        return "missing Mcp-Method header"
    if not _same(got, method):
        return "Mcp-Method header does not match the body's method"
    key = _NAME_PARAM.get(method)
    if key is not None and isinstance(params.get(key), str):
        got = headers.get("mcp-name")
        if got is None:
            return "missing Mcp-Name header"
        if not _same(got, params[key]):
            return f"Mcp-Name header does not match the body's {key}"
    if method == "tools/call":
        name = params.get("name")
        args = params.get("arguments")
        for header, path in mirror.params_of(name if isinstance(name, str) else "").items():
            value: Any = args
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            if value is None:
                continue
            got = headers.get(f"mcp-param-{header.lower()}")
            if got is None:
                return f"missing Mcp-Param-{header} header"
            if not _same(got, value):
                return f"Mcp-Param-{header} header does not match the argument"
    return None
