"""
A simulated cluster RPC for in-process cluster tests: L{SimNetwork.make_rpc}
stands in for L{stalwart.cluster.rpc.service.RPCService}, delivering Raft
messages, roster exchanges and forwarded proposals between the nodes of
one test on their shared clock, one reactor turn later (never re-entrantly).
Nodes can be cut off (both ways) and brought back.
"""

from __future__ import annotations

from collections import Counter
from typing import Dict, Set, Tuple

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import ConnectionRefusedError

from stalwart.cluster.rpc import commands

Address = Tuple[str, int]


class SimNetwork:
    def __init__(self, clock) -> None:
        self.clock = clock
        self.nodes: Dict[Address, "SimRPC"] = {}
        self.cut: Set[str] = set()
        self.counters: Counter = Counter()

    def make_rpc_for(self, address: Address):
        """The C{make_rpc} of the node whose advertised RPC address is C{address}."""
        def make(**arguments) -> "SimRPC":
            rpc = SimRPC(self, address, **arguments)
            self.nodes[address] = rpc
            return rpc

        return make

    def reachable(self, a: str, b: str) -> bool:
        return a not in self.cut and b not in self.cut

    def call(self, source: "SimRPC", address: Address, handler_name: str, value) -> Deferred:
        d = Deferred()

        def run():
            target = self.nodes.get(address)
            if target is None or not target.running or not self.reachable(source.node_id, target.node_id):
                d.errback(ConnectionRefusedError(str(address)))
                return
            handler = getattr(target, handler_name)
            if handler is None:
                d.errback(commands.Unavailable("no handler"))
                return
            answer = maybeDeferred(handler, value)

            def back(result):
                # The answer travels back a turn later, and is lost if cut meanwhile.
                self.clock.callLater(0, lambda: d.callback(result) if self.reachable(source.node_id, target.node_id)
                                     else d.errback(ConnectionRefusedError("cut")))

            def failed(failure):
                self.clock.callLater(0, d.errback, failure)

            answer.addCallbacks(back, failed)

        self.clock.callLater(0, run)
        return d


class SimRPC:
    def __init__(self, network: SimNetwork, address: Address, *, node_id, address_book, deliver, exchange,
                 forward, peer_lost=None) -> None:
        self.network = network
        self.address = address
        self.node_id = node_id
        self.address_book = address_book
        self.deliver = deliver
        self.exchange_handler = exchange
        self.forward_handler = forward
        self.peer_lost = peer_lost
        self.running = False

    def startService(self) -> None:
        self.running = True

    def stopService(self):
        self.running = False

    def send(self, message) -> None:
        address = self.address_book.get(message.recipient)
        if address is None:
            self.network.counters["unknown_recipient"] += 1
            return

        def arrive():
            target = self.network.nodes.get(tuple(address))
            if target is not None and target.running and self.network.reachable(self.node_id, target.node_id):
                target.deliver(message)

        self.network.clock.callLater(0, arrive)

    def exchange(self, address: Address, data: bytes) -> Deferred:
        return self.network.call(self, tuple(address), "exchange_handler", data)

    def forward(self, address: Address, payload: bytes) -> Deferred:
        return self.network.call(self, tuple(address), "forward_handler", payload)
