"""relay: a PCI DSS guardrail between MCP clients and MCP servers."""

__version__ = "0.2.0"
