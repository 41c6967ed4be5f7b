# -*- test-case-name: tests.cluster.rpc.test_protocol,tests.cluster.rpc.test_protocol_calls -*-
"""
The AMP protocol of cluster RPC, both sides (DESIGN.md section 3).

On a new connection the client runs the admission exchange of
L{stalwart.cluster.rpc.auth} (C{Hello}, C{Prove}); until it succeeds, the
server accepts nothing else: any other box, an unknown command, a box over
L{HANDSHAKE_BOX_BYTES_MAX} or a connection still unadmitted after the
timeout closes the connection at once and is counted.  Only then are
C{RaftMessage}s decoded and handed to C{deliver}, one by one, in order,
and C{Exchange} and C{Forward} calls handed to their handlers (at most
C{calls_inflight_max} at a time per connection).  The client accepts no
commands at all, only answers to its own, each at most C{answer_bytes_max}.

A handler answers with a value, a Deferred, or L{NotLeader} /
L{Unavailable}; anything else it raises is a bug: it is logged and the
caller gets C{Unavailable("internal error")}, on a connection that stays.

Untrusted bytes never raise out of C{dataReceived}: AMP framing errors,
unknown answer tags, undecodable arguments and oversized boxes are each
counted under C{refused_<reason>} in the shared C{counters} and end the
connection.  Errors raised by C{deliver} itself are bugs and are logged.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IReactorTime, ITransport
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure

from stalwart.logs import observer

from stalwart.cluster.raft.messages import Message
from stalwart.cluster.rpc import auth, codec
from stalwart.cluster.rpc.commands import (
    AdmissionRefused,
    Exchange,
    Forward,
    Hello,
    MalformedArguments,
    NotLeader,
    Prove,
    RaftMessage,
    Unavailable,
    UnsupportedMessage,
)

__all__ = ["Connection", "ServerProtocol", "ClientProtocol", "AdmissionFailed", "HANDSHAKE_BOX_BYTES_MAX",
           "CALLS_INFLIGHT_MAX", "ExchangeHandler", "ForwardHandler"]

#: Largest box accepted before admission (and by default by a client): a hello is ~100 bytes.
HANDSHAKE_BOX_BYTES_MAX = 4096

#: Calls a server runs at once per connection.  Our clients send one at a
#: time (L{stalwart.cluster.rpc.calls}); a few more are tolerated, not a flood.
CALLS_INFLIGHT_MAX = 4

#: Returns the TLS channel binding of a transport (L{stalwart.cluster.rpc.tls}).
Binding = Callable[[ITransport], bytes]
#: Answers a membership document with this node's (or a Deferred of it).
ExchangeHandler = Callable[[bytes], Union[Deferred, bytes]]
#: Proposes a forwarded write; a Deferred of its C{(term, index)} once applied.
ForwardHandler = Callable[[bytes], Deferred]


class AdmissionFailed(Exception):
    """The connection closed before both sides were admitted."""


class Connection(amp.AMP):
    """What both sides share: box limits, refusals, the admission timer."""

    log = Logger(observer=observer)

    def __init__(self, *, key: bytes, urandom: Callable[[int], bytes], clock: IReactorTime,
                 binding: Binding, counters: Counter, timeout_seconds: float) -> None:
        super().__init__()
        self._key = key
        self._urandom = urandom
        self._clock = clock
        self._binding = binding
        self._counters = counters
        self._timeout_seconds = timeout_seconds
        self._timer: Any = None
        self._box_bytes = 0
        self._closed = False
        self._lost_waiters: List[Deferred] = []
        self.is_lost = False

    def _admitted(self) -> bool:
        raise NotImplementedError

    def _box_bytes_max(self) -> int:
        return HANDSHAKE_BOX_BYTES_MAX

    def _accepts(self, command: str) -> bool:
        return False

    @property
    def closing(self) -> bool:
        """Whether the connection is closed or closing: nothing more can be sent."""
        return self._closed

    def when_lost(self) -> Deferred:
        """A Deferred that fires with None once the connection is closed."""
        d: Deferred = Deferred()
        if self.is_lost:
            d.callback(None)
        else:
            self._lost_waiters.append(d)
        return d

    def connectionMade(self) -> None:
        self._timer = self._clock.callLater(self._timeout_seconds, self._refuse, "timeout")

    def _stop_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _refuse(self, reason: str, abort: bool = True) -> None:
        """Count, log and (unless a fatal AMP error closes it instead) abort the connection."""
        if self._closed:
            return
        self._closed = True
        self._stop_timer()
        self._counters[f"refused_{reason}"] += 1
        self.log.warn("RPC {peer} refused: {reason}", peer=self.transport.getPeer(), reason=reason)
        if abort:
            self.transport.abortConnection()

    # Untrusted input, from the framing up.

    def stringReceived(self, string: bytes) -> None:
        if self._closed:
            return
        self._box_bytes += len(string) + 2
        if self._box_bytes > self._box_bytes_max():
            self._refuse("oversized")
            return
        super().stringReceived(string)
        if not self._admitted():
            # AMP buffers a whole value (up to 64 KiB) before handing it
            # over: before admission, refuse long ones from their length.
            self.MAX_LENGTH = min(self.MAX_LENGTH, HANDSHAKE_BOX_BYTES_MAX)

    def lengthLimitExceeded(self, length: int) -> None:
        self._refuse("oversized")

    def ampBoxReceived(self, box: amp.AmpBox) -> None:
        self._box_bytes = 0
        if self._closed:
            return
        reason = self._check(box)
        if reason is not None:
            self._refuse(reason)
            return
        super().ampBoxReceived(box)

    def _check(self, box: amp.AmpBox) -> Optional[str]:
        """Why C{box} must not be processed, or None."""
        if amp.COMMAND in box:
            try:
                name = box[amp.COMMAND].decode("ascii")
            except UnicodeDecodeError:
                return "malformed"
            return None if self._accepts(name) else ("premature" if not self._admitted() else "unexpected")
        tag = box.get(amp.ANSWER, box.get(amp.ERROR))
        if tag is None or tag not in self._outstandingRequests:
            return "malformed"
        if amp.ERROR in box and not (amp.ERROR_CODE in box and amp.ERROR_DESCRIPTION in box):
            return "malformed"
        return None

    def locateResponder(self, name: bytes) -> Any:
        """Arguments that do not parse end the connection instead of logging a failure."""
        responder = super().locateResponder(name)
        if responder is None:
            return None

        def parsed(box: amp.AmpBox) -> Any:
            try:
                return responder(box)  # raises synchronously only while parsing arguments
            except Exception:
                self._refuse("malformed", abort=False)
                return fail(MalformedArguments())

        return parsed

    def dispatchCommand(self, box: amp.AmpBox) -> Deferred:
        d = super().dispatchCommand(box)

        def fatal(failure: Failure) -> Failure:
            failure.trap(MalformedArguments)
            return Failure(amp.RemoteAmpError(b"MALFORMED", "malformed arguments", fatal=True))

        return d.addErrback(fatal)

    def connectionLost(self, reason: Failure) -> None:
        self._stop_timer()
        if not self._closed and not self._admitted():
            # Closed by the peer or the network before admission: a TLS
            # failure (a plain-TCP client), a peer that gave up, a reset.
            self._counters["closed_unadmitted"] += 1
        self._closed = True
        super().connectionLost(reason)
        self.is_lost = True
        waiters, self._lost_waiters = self._lost_waiters, []
        for d in waiters:
            d.callback(None)


class ServerProtocol(Connection):
    """
    The accepting side: answers the admission exchange, then decodes each
    C{RaftMessage} and calls C{deliver(message)}.
    """

    def __init__(self, *, deliver: Callable[[Message], None], message_bytes_max: int,
                 exchange: Optional[ExchangeHandler] = None, forward: Optional[ForwardHandler] = None,
                 exchange_bytes_max: int = 1 << 20, calls_inflight_max: int = CALLS_INFLIGHT_MAX,
                 accepted_keys: Sequence[bytes] = (), peer_lost: Optional[Callable[[str], None]] = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._deliver = deliver
        #: Told the sender's node id when an admitted connection that
        #: carried its Raft messages is lost (a crashed leader's followers
        #: learn it at once: L{RaftCore.leader_unreachable}).
        self._peer_lost = peer_lost
        self._sender: Optional[str] = None
        self._message_bytes_max = message_bytes_max
        self._exchange = exchange
        self._forward = forward
        self._exchange_bytes_max = exchange_bytes_max
        self._calls_inflight_max = calls_inflight_max
        self._calls_inflight = 0
        self._admission = auth.ServerAdmission(self._key, self._urandom, also=accepted_keys)

    def _admitted(self) -> bool:
        return self._admission.admitted

    def _box_bytes_max(self) -> int:
        return self._message_bytes_max if self._admission.admitted else HANDSHAKE_BOX_BYTES_MAX

    def _accepts(self, command: str) -> bool:
        return self._admission.expects(command)

    def _refused(self, refused: auth.Refused) -> AdmissionRefused:
        self._refuse(refused.reason, abort=False)  # the fatal AMP error closes the connection
        return AdmissionRefused(refused.reason)

    @Hello.responder
    def hello(self, version: int, nonce: bytes) -> dict:
        try:
            version, server_nonce = self._admission.hello(version, nonce)
        except auth.Refused as refused:
            raise self._refused(refused) from None
        return {"version": version, "nonce": server_nonce}

    @Prove.responder
    def prove(self, proof: bytes) -> dict:
        try:
            server_proof = self._admission.prove(self._binding(self.transport), proof)
        except auth.Refused as refused:
            raise self._refused(refused) from None
        self._stop_timer()
        self._counters["admitted"] += 1
        self.log.info("RPC peer {peer} admitted", peer=self.transport.getPeer())
        return {"proof": server_proof}

    @RaftMessage.responder
    def raft_message(self, message: bytes) -> dict:
        try:
            decoded = codec.decode(message)
        except codec.UnsupportedMessage as e:
            self._counters["unsupported"] += 1
            self.log.warn("RPC {peer}: unsupported message ({why})", peer=self.transport.getPeer(), why=e)
            raise UnsupportedMessage(str(e)) from None
        except codec.MalformedMessage as e:
            self._refuse("malformed", abort=False)
            raise MalformedArguments(str(e)) from None
        self._counters["received"] += 1
        self._sender = decoded.sender
        self._deliver(decoded)
        return {}

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        if self._peer_lost is not None and self._sender is not None:
            self._peer_lost(self._sender)

    @Exchange.responder
    def exchange(self, data: bytes) -> Deferred:
        if len(data) > self._exchange_bytes_max:
            self._counters["exchange_oversized"] += 1
            return fail(Unavailable("exchange data over exchange_bytes_max"))
        return self._call("exchange", self._exchange, data, self._exchanged)

    def _exchanged(self, answer: Any) -> dict:
        assert isinstance(answer, bytes), f"exchange handler answered {type(answer).__name__}, not bytes"
        if len(answer) > self._exchange_bytes_max:
            self._counters["exchange_answer_oversized"] += 1
            raise Unavailable("exchange answer over exchange_bytes_max")
        return {"data": answer}

    @Forward.responder
    def forward(self, payload: bytes) -> Deferred:
        return self._call("forward", self._forward, payload, self._forwarded)

    def _forwarded(self, answer: Tuple[int, int]) -> dict:
        term, index = answer
        assert isinstance(term, int) and isinstance(index, int), answer
        return {"term": term, "index": index}

    def _call(self, name: str, handler: Optional[Callable[[bytes], Any]], argument: bytes,
              answer: Callable[[Any], dict]) -> Deferred:
        """Run C{handler(argument)} and make its outcome an answer or a known error, never a crash."""
        if handler is None:
            self._counters[f"{name}_not_served"] += 1
            return fail(Unavailable(f"{name} not served here"))
        if self._calls_inflight >= self._calls_inflight_max:
            self._counters["calls_busy"] += 1
            return fail(Unavailable("busy"))
        self._calls_inflight += 1
        self._counters[f"{name}_received"] += 1
        d = maybeDeferred(handler, argument).addCallback(answer)

        def done(result: Any) -> Any:
            self._calls_inflight -= 1
            if isinstance(result, Failure):
                if result.check(NotLeader, Unavailable):
                    outcome = "not_leader" if result.check(NotLeader) else "unavailable"
                    self._counters[f"{name}_{outcome}"] += 1
                    return result
                self._counters[f"{name}_failed"] += 1
                self.log.failure("RPC {name} handler failed", result, name=name)
                return Failure(Unavailable("internal error"))
            return result

        return d.addBoth(done)


class ClientProtocol(Connection):
    """
    The connecting side: runs the admission exchange as soon as it is
    connected (TLS buffers the first box until its handshake is done), then
    sends messages with L{send}.  C{admitted} fires with this protocol once
    both sides proved the key, or fails with L{AdmissionFailed} (or
    L{CancelledError} if cancelled, which closes the connection).

    @param answer_bytes_max: the largest answer box accepted after
        admission; a larger one closes the connection.  Raft links only
        get empty acknowledgements; call connections get C{Exchange} data.
    """

    def __init__(self, *, answer_bytes_max: int = HANDSHAKE_BOX_BYTES_MAX, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._answer_bytes_max = answer_bytes_max
        self._admission = auth.ClientAdmission(self._key, self._urandom)
        self.admitted: Deferred = Deferred(lambda d: self._cancel())

    def _admitted(self) -> bool:
        return self._admission.admitted

    def _box_bytes_max(self) -> int:
        return self._answer_bytes_max if self._admission.admitted else HANDSHAKE_BOX_BYTES_MAX

    def _cancel(self) -> None:
        self._closed = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.abortConnection()

    def connectionMade(self) -> None:
        super().connectionMade()
        version, nonce = self._admission.hello()
        d = self.callRemote(Hello, version=version, nonce=nonce)
        d.addCallback(self._hello_answered)
        d.addCallback(self._proof_answered)
        d.addErrback(self._handshake_failed)

    def _hello_answered(self, answer: dict) -> Deferred:
        proof = self._admission.prove(answer["version"], answer["nonce"], self._binding(self.transport))
        return self.callRemote(Prove, proof=proof)

    def _proof_answered(self, answer: dict) -> None:
        self._admission.check(answer["proof"])
        self._stop_timer()
        self._counters["connected"] += 1
        if not self.admitted.called:
            self.admitted.callback(self)

    def _handshake_failed(self, failure: Failure) -> None:
        if failure.check(auth.Refused):
            self._refuse(failure.value.reason)
        elif failure.check(AdmissionRefused):
            self._counters["refused_by_peer"] += 1
            self.log.warn("RPC {peer} refused our proof: is encryption-key the same on every node?",
                          peer=self.transport.getPeer() if self.transport else None)
        elif not self._closed:
            self._refuse("malformed")  # an answer that did not parse
        if not self._closed:
            self._cancel()
        if not self.admitted.called:
            self.admitted.errback(Failure(AdmissionFailed(failure.getErrorMessage())))

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        if not self.admitted.called:
            self.admitted.errback(Failure(AdmissionFailed(reason.getErrorMessage())))

    def send(self, arguments: dict) -> Deferred:
        """Send one C{RaftMessage} (arguments from L{codec.to_arguments}); fires on its ack."""
        assert self._admission.admitted
        return self.callRemote(RaftMessage, **arguments)

    def call(self, command: type, **arguments: Any) -> Deferred:
        """Send one C{Exchange} or C{Forward}; fires with its answer, or fails with its error."""
        assert self._admission.admitted
        return self.callRemote(command, **arguments)
