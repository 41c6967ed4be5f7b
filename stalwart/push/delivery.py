# -*- test-case-name: tests.push.test_delivery -*-
"""
Delivering to PushSubscriptions (RFC 8620 7.2) by HTTP POST, from the
node that leads.

Every node keeps every account's subscriptions in memory (at most
L{SUBSCRIPTIONS_PER_ACCOUNT_MAX} each), loaded at start and reloaded for
an account when one of its PushSubscription/set entries is applied.  Each
verified subscription is a L{Listener} of the change feed with its
C{types}, so it is coalesced like an event stream.  Only the leader
(C{is_leader()} when a message is due) POSTs; after a leader change the
new one carries on with later changes.  The PushVerification of a new
subscription is sent by the leader that applies its creation; one lost in
a leader change is not sent again (the client creates a new
subscription).

Each POST has push-timeout seconds; a failure (no answer, 5xx, 429) is
retried after push-retry-interval with the changes that arrived meanwhile
merged in, up to push-attempts-max attempts in a row; a 429 also holds
the subscription's pushes for its Retry-After (at least the retry
interval).  One POST at a time per subscription.  A 404 or 410 (gone)
stops pushes to it on this node.
"""

from __future__ import annotations

import json
import datetime
from typing import Callable, Dict, List

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from stalwart.logs import observer
from stalwart.push.feed import ChangeFeed, state_change
from stalwart.push.subscription import SET_METHOD, Subscription, format_utc_date, read_subscriptions
from stalwart.push.webpush import encrypt
from stalwart.store.commands import decode_command

__all__ = ["PushDelivery", "agent_post", "PUSH_TTL_SECONDS"]

log = Logger(observer=observer)

#: The TTL header (RFC 8030 5.2): how long a push service may hold the
#: message for an offline device.  A StateChange is only a hint to sync,
#: but one a day old still saves a poll.
PUSH_TTL_SECONDS = 86400


@implementer(IBodyProducer)
class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer):
        consumer.write(self._data)
        return succeed(None)

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


class _Discard(Protocol):
    """Reads nothing of a push service's answer: only its status matters."""

    def connectionMade(self):
        self.transport.stopProducing()


def agent_post(agent, clock, timeout: float) -> Callable[[str, Dict[bytes, bytes], bytes], Deferred]:
    """A C{post(url, headers, body)} firing with the response's status code."""

    def post(url: str, headers: Dict[bytes, bytes], body: bytes) -> Deferred:
        d = agent.request(b"POST", url.encode("utf-8"), Headers({k: [v] for k, v in headers.items()}), _Body(body))

        def answered(response):
            response.deliverBody(_Discard())
            retry_after = response.headers.getRawHeaders(b"retry-after", [b""])[0]
            return response.code, retry_after

        d.addCallback(answered)
        d.addTimeout(timeout, clock)
        return d

    return post


class _Target:
    """One verified subscription: its feed listener and its POSTs."""

    def __init__(self, delivery: "PushDelivery", subscription: Subscription) -> None:
        self.delivery = delivery
        self.subscription = subscription
        types = frozenset(subscription.types) if subscription.types is not None else None
        self.listener = delivery.feed.listen(subscription.account, self.due, types)
        self.busy = False
        self.failures = 0
        self.dead = False

    def due(self, states, push_state: str) -> None:
        delivery = self.delivery
        if self.dead or not delivery.is_leader() or self.expired():
            return
        if self.busy:
            self.listener.changed(states, push_state)  # merged into the next POST
            return
        self.busy = True
        message = state_change(self.subscription.account, states)
        d = delivery.send(self.subscription, message)
        d.addCallback(self._sent, states, push_state)

    def expired(self) -> bool:
        return self.subscription.expires <= format_utc_date_now(self.delivery.clock)

    def _sent(self, outcome, states, push_state) -> None:
        self.busy = False
        status, retry_after = outcome
        if 200 <= status < 300:
            self.failures = 0
            return
        if status in (404, 410):
            log.info("push subscription {id} is gone ({status})", id=self.subscription.id, status=status)
            self.dead = True
            return
        self.failures += 1
        if self.failures >= self.delivery.attempts_max:
            log.warn("push to subscription {id} failed {n} times; dropping a StateChange",
                     id=self.subscription.id, n=self.failures)
            self.failures = 0
            return
        hold = self.delivery.retry_interval
        if status == 429 and retry_after.isdigit():
            hold = max(hold, min(int(retry_after), 3600))
        self.listener.hold(hold)
        self.listener.changed(states, push_state)

    def cancel(self) -> None:
        self.listener.cancel()


def format_utc_date_now(clock) -> str:
    return format_utc_date(datetime.datetime.fromtimestamp(int(clock.seconds()), tz=datetime.timezone.utc))


class PushDelivery:
    """
    @ivar post: C{post(url, headers, body)} firing with (status,
        Retry-After bytes): L{agent_post} in production; tests put a
        recorder or an agent of the real reactor here.
    """

    def __init__(self, clock, feed: ChangeFeed, read: Callable[..., Deferred], is_leader: Callable[[], bool],
                 post: Callable[[str, Dict[bytes, bytes], bytes], Deferred], urandom: Callable[[int], bytes],
                 attempts_max: int, retry_interval: float) -> None:
        """
        @param read: C{read(f, *args)} runs C{f(conn, *args)} on a store reader.
        @param retry_interval: seconds before a failed POST is tried again.
        """
        self.clock = clock
        self.feed = feed
        self._read = read
        self.is_leader = is_leader
        self.post = post
        self._urandom = urandom
        self.attempts_max = attempts_max
        self.retry_interval = retry_interval
        self._targets: Dict[str, Dict[str, _Target]] = {}
        self._touched: set = set()

    # -- subscriptions -----------------------------------------------------------

    def load(self) -> Deferred:
        """Load every account's subscriptions (at start)."""

        def read_all(conn):
            accounts = [row[0] for row in conn.execute("SELECT DISTINCT account_id FROM push_subscriptions")]
            return {account: read_subscriptions(conn, account) for account in accounts}

        def loaded(by_account):
            for account, subscriptions in by_account.items():
                if account not in self._touched:
                    self._replace(account, subscriptions)

        return self._read(read_all).addCallback(loaded)

    def _replace(self, account: str, subscriptions: List[Subscription]) -> None:
        for target in self._targets.pop(account, {}).values():
            target.cancel()
        targets = {s.id: _Target(self, s) for s in subscriptions if s.verified}
        if targets:
            self._targets[account] = targets

    def applied(self, entry, result) -> None:
        """on_applied listener: notice PushSubscription/set entries."""
        if not isinstance(result, dict):
            return
        responses = result.get("responses")
        if not responses or responses[0][0] != SET_METHOD:
            return
        account = decode_command(entry.data).args["account"]
        self._touched.add(account)
        created = [item["id"] for item in (responses[0][1].get("created") or {}).values()]
        send_verifications = self.is_leader()

        def reloaded(subscriptions: List[Subscription]) -> None:
            self._replace(account, subscriptions)
            if send_verifications:
                for subscription in subscriptions:
                    if subscription.id in created:
                        self.send_verification(subscription)

        d = self._read(read_subscriptions, account)
        d.addCallback(reloaded).addErrback(lambda f: log.failure("reloading push subscriptions failed", f))

    def stop(self) -> None:
        for targets in self._targets.values():
            for target in targets.values():
                target.cancel()
        self._targets.clear()

    # -- sending -------------------------------------------------------------------

    def send_verification(self, subscription: Subscription, attempt: int = 1) -> None:
        message = {
            "@type": "PushVerification",
            "pushSubscriptionId": subscription.id,
            "verificationCode": subscription.code_sent,
        }

        def sent(outcome):
            status, _ = outcome
            if (status >= 500 or status == 429) and attempt < self.attempts_max:
                self.clock.callLater(self.retry_interval, self.send_verification, subscription, attempt + 1)

        self.send(subscription, message).addCallback(sent)

    def send(self, subscription: Subscription, message: dict) -> Deferred:
        """POST C{message}; fires with (status, retry-after), 0 for no answer; never fails."""
        body = json.dumps(message, separators=(",", ":")).encode("utf-8")
        headers = {b"content-type": b"application/json", b"ttl": str(PUSH_TTL_SECONDS).encode(), b"urgency": b"normal"}
        if subscription.keys is not None:
            body = encrypt(body, subscription.keys["p256dh"], subscription.keys["auth"], self._urandom)
            headers[b"content-encoding"] = b"aes128gcm"
        d = self.post(subscription.url, headers, body)

        def failed(failure):
            log.info("push to {url} failed: {error}", url=subscription.url, error=failure.getErrorMessage())
            return 0, b""

        return d.addErrback(failed).addCallback(lambda outcome: (outcome[0], outcome[1].decode("latin-1").strip()))
