"""PCI masking: card data detection (PANs, track data, CVV and PIN values) and the guard that masks it."""
