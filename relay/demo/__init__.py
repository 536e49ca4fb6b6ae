"""Embedded sample "payments" MCP server (fake data, published test cards) used by `relay demo`."""
