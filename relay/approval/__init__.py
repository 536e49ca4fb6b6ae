"""Approvals: the policy that picks which tool calls need a person, the requests, and the channels."""
