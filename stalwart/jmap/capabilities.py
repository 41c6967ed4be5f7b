"""Capability URIs (RFC 8620 section 9.4, RFC 8621 section 10.1)."""

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
SUBMISSION = "urn:ietf:params:jmap:submission"
VACATION = "urn:ietf:params:jmap:vacationresponse"
WEBSOCKET = "urn:ietf:params:jmap:websocket"

__all__ = ["CORE", "MAIL", "SUBMISSION", "VACATION", "WEBSOCKET"]
