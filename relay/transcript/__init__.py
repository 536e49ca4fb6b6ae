"""Session transcripts: what relay writes about every relayed message."""
