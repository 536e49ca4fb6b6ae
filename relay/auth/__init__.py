"""Identity: OIDC login (device flow, bots), short-lived per-server grants, and where refresh tokens live."""
