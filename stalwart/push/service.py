# -*- test-case-name: tests.push.test_eventsource -*-
"""
The "push" service: the change feed, the EventSource and WebSocket
resources, and PushSubscription delivery, wired to a node.

L{push_extension} adds PushSubscription/get and /set, their table and the
WebSocket capability; L{PushService} must start after the "raft" service
(it registers the feed and delivery as on_applied listeners of its
driver) and, when it stops, ends every open event stream and WebSocket.
"""

from __future__ import annotations

from typing import Callable

from twisted.application.service import Service
from twisted.web.client import Agent

from stalwart.push.delivery import PushDelivery, agent_post
from stalwart.push.eventsource import EventSourceEndpoint
from stalwart.push.feed import ChangeFeed
from stalwart.push.subscription import PUSH_SCHEMA, SET_METHOD, PushSubscriptionGet, PushSubscriptionSet, apply_push_set
from stalwart.push.websocket import WEBSOCKET, WebSocketEndpoint, websocket_capability
from stalwart.service.extension import Extension

__all__ = ["PushService", "push_extension"]


def push_extension(config, clock, urandom: Callable[[int], bytes]) -> Extension:
    return Extension(
        methods={
            "PushSubscription/get": PushSubscriptionGet(),
            SET_METHOD: PushSubscriptionSet(urandom, clock, config.push_expires_max / 1000),
        },
        writes={SET_METHOD: apply_push_set},
        capabilities={WEBSOCKET: websocket_capability(config.jmap_url)},
        schema=PUSH_SCHEMA,
    )


class PushService(Service):
    """
    @ivar resources: the children of /jmap: C{eventsource} and C{ws}.
    """

    def __init__(self, config, node, store, clock, urandom: Callable[[int], bytes], agent=None) -> None:
        """
        @param agent: the L{IAgent} that POSTs to push services; by default
            an L{Agent} on C{clock} (the reactor).
        """
        self._node = node
        self.feed = ChangeFeed(clock, config.event_source_throttle / 1000, lambda index: store.state_machine.changed_states(index))
        self.eventsource = EventSourceEndpoint(node, self.feed, clock)
        self.websocket = WebSocketEndpoint(
            node, self.feed, clock, config.ws_heartbeat_interval / 1000, config.ws_client_timeout / 1000
        )
        self.resources = {b"eventsource": self.eventsource, b"ws": self.websocket}
        post = agent_post(agent if agent is not None else Agent(clock), clock, config.push_timeout / 1000)
        self.delivery = PushDelivery(
            clock, self.feed, lambda f, *args: node.reader.run(f, *args), lambda: node.raft.driver.is_leader, post, urandom,
            config.push_attempts_max, config.push_retry_interval / 1000,
        )

    def startService(self) -> None:
        super().startService()
        driver = self._node.raft.driver
        driver.on_applied(self.feed.applied)
        driver.on_applied(self.delivery.applied)
        self.delivery.load()

    def stopService(self):
        self.eventsource.close_all()
        self.websocket.close_all()
        self.delivery.stop()
        return super().stopService()
