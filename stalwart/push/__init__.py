"""
Push (RFC 8620 section 7, RFC 8887): the feed of changed states, the
EventSource and WebSocket resources, and PushSubscription with its
delivery by HTTP POST (encrypted per RFC 8291 when the client gives keys).
"""

__all__ = ["feed", "eventsource", "websocket", "subscription", "delivery", "webpush"]
