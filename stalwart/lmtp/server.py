# -*- test-case-name: tests.lmtp.test_server -*-
"""
The LMTP protocol (RFC 2033) on twisted.mail's L{smtp.ESMTP}.

What twisted.mail gives as it is: command dispatch, the MAIL and RCPT
address grammar, the idle timeout.  What LMTP changes, here:

  - C{LHLO} replaces C{HELO}/C{EHLO}, which are refused (RFC 2033 4.1);
    no transaction before it;
  - after the final dot, one reply per accepted recipient, in RCPT order
    (RFC 2033 4.2), from the outcomes of ONE C{mail.deliver} command;
  - PIPELINING (RFC 2920): lines are queued while a RCPT lookup or a
    delivery is in progress, so replies keep the order of the commands;
  - ENHANCEDSTATUSCODES (RFC 2034) on every reply but the greeting, 354
    and LHLO's; 8BITMIME (bytes are stored as received); SIZE (RFC 1870);
    STARTTLS (RFC 3207) when a certificate is configured;
  - lines end with CRLF only: a bare LF or CR in a command refuses the
    command, in the message refuses the message (554 5.6.0), so "<LF>.<LF>"
    can never end the data (SMTP smuggling).  Lines longer than the limits
    refuse the command (500) or the message (554 5.6.0) without dropping
    the connection; the rest of such a line is skipped.
"""

from __future__ import annotations

import collections
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.mail import smtp

from stalwart.logs import observer
from stalwart.mail.delivery import DELIVERED, DUPLICATE, NO_MAILBOX, OVER_QUOTA, UNKNOWN, Envelope
from stalwart.store.refusal import Refused

__all__ = ["LMTPServer", "LmtpLimits", "reply_for", "TEMPORARY_FAILURE"]

_ENHANCED = re.compile(rb"^[245]\.\d{1,3}\.\d{1,3}( |$)")

#: Enhanced codes (RFC 3463) for replies twisted.mail sends without one.
_DEFAULT_ENHANCED = {221: b"2.0.0", 250: b"2.0.0", 421: b"4.4.2", 451: b"4.3.0", 454: b"4.7.0", 500: b"5.5.2",
                     501: b"5.5.4", 503: b"5.5.1", 550: b"5.0.0", 553: b"5.1.3"}

TEMPORARY_FAILURE = (451, b"4.3.0 Temporary failure, try again later")
TOO_BIG = (552, b"5.3.4 Message too big for system")
BARE_NEWLINE = (554, b"5.6.0 Message contains a bare LF or CR: lines must end with CRLF")
LONG_LINE = (554, b"5.6.0 Message contains a line longer than the limit")


@attrs.frozen
class LmtpLimits:
    #: Largest message, in bytes (SIZE; config mail-max-size).
    message_bytes_max: int = 50_000_000
    #: RCPTs per transaction; RFC 5321 4.5.3.1.8 asks for at least 100.
    recipients_max: int = 1000
    #: Longest command line without CRLF: RFC 5321's 512 plus room for
    #: ESMTP parameters.
    command_line_bytes_max: int = 2048
    #: Longest message line without CRLF.  RFC 5322 allows 998; MTAs fold
    #: longer ones before LMTP; anything past this is not mail.
    data_line_bytes_max: int = 65536
    #: Lines queued behind a pending reply before reading pauses.
    queued_lines_max: int = 200
    #: Seconds a delivery may take before the reply is 451 (the MTA retries;
    #: if the entry commits later, the retry is suppressed as a duplicate).
    delivery_seconds_max: float = 120.0


def reply_for(outcome: Dict[str, Any]) -> Tuple[int, bytes]:
    """The LMTP reply (code, text with enhanced code) for one recipient's outcome."""
    rcpt = "<" + str(outcome.get("rcpt", "")) + ">"
    status = outcome.get("status")
    if status == DELIVERED:
        return 250, f"2.0.0 {rcpt} Delivered".encode()
    if status == DUPLICATE:
        return 250, f"2.0.0 {rcpt} Already delivered".encode()
    if status == OVER_QUOTA:
        return 552, f"5.2.2 {rcpt} Mailbox full".encode()
    if status == UNKNOWN:
        return 550, f"5.1.1 {rcpt} No such user".encode()
    if status == NO_MAILBOX:
        return 450, f"4.2.1 {rcpt} No Inbox to deliver to".encode()
    return TEMPORARY_FAILURE


def _ends_badly(line: bytes) -> bool:
    return b"\n" in line or b"\r" in line


class LMTPServer(smtp.ESMTP):
    """
    One LMTP connection.

    @param resolve: C{resolve(address) -> Deferred[Recipient or None]}.
    @param deliver: C{deliver(envelope, specs, message) -> Deferred} of the
        C{mail.deliver} result (L{stalwart.mail.delivery}).
    @param clock: the reactor's time, for the idle and delivery timeouts.
    @param trusted: C{trusted(ip) -> bool}; others get 554 and are dropped.
    @param tls: a TLS context factory for STARTTLS, or C{None}.
    @param delivered: called with (envelope, message, result) after the
        replies; the hook where vacation auto-replies will be sent.
    """

    log = Logger(observer=observer)
    noisy = False

    def __init__(self, resolve: Callable, deliver: Callable, clock, host: bytes, limits: LmtpLimits,
                 trusted: Callable[[str], bool] = lambda ip: True, tls=None, tls_only: bool = False,
                 delivered: Optional[Callable] = None) -> None:
        super().__init__(contextFactory=tls)
        self.host = host
        self._resolve, self._deliver, self._clock = resolve, deliver, clock
        self._limits, self._trusted, self._tls_only, self._delivered = limits, trusted, tls_only, delivered
        self._buffer = b""
        self._skipping = False
        self._queue: collections.deque = collections.deque()
        self._pending: Optional[Deferred] = None
        self._blocked = False
        self._paused = False
        self._lhlo = False
        self._plain_reply = False
        #: The message as it arrives: one buffer, so memory is its size
        #: whatever the number of lines.
        self._data = bytearray()
        self._data_error: Optional[Tuple[int, bytes]] = None
        self._transaction: Optional[Tuple[Envelope, list]] = None

    def callLater(self, period, func):  # TimeoutMixin: the injected clock
        return self._clock.callLater(period, func)

    # -- connection --------------------------------------------------------

    def connectionMade(self) -> None:
        peer = getattr(self.transport.getPeer(), "host", "")
        if not self._trusted(peer):
            self.log.info("LMTP connection from untrusted {peer} refused", peer=peer)
            self.sendLine(b"554 5.7.1 " + self.host + b" LMTP not available to " + peer.encode("ascii", "replace"))
            self.transport.loseConnection()
            return
        super().connectionMade()

    def greeting(self) -> bytes:
        return self.host + b" LMTP stalwart-jmap ready"

    def sendCode(self, code: int, message: bytes = b"") -> None:
        if code not in (220, 354) and not self._plain_reply:
            lines = message.splitlines() or [b""]
            prefix = _DEFAULT_ENHANCED.get(code, b"%d.0.0" % (code // 100))
            message = b"\n".join(line if _ENHANCED.match(line) else prefix + b" " + line for line in lines)
        super().sendCode(code, message)

    # -- lines: CRLF only, bounded, queued behind pending replies ----------

    def dataReceived(self, data: bytes) -> None:
        buffer, start, plain = self._buffer + data, 0, not self.startedTLS
        while not self.transport.disconnecting:
            end = buffer.find(b"\r\n", start)
            if end < 0:
                break
            line, start = buffer[start:end], end + 2
            if self._skipping:
                self._skipping = False  # the end of an overlong line
                continue
            self._received(line)
            if plain and self.startedTLS:
                # RFC 3207 4.2: plain text pipelined after STARTTLS could
                # be an injection; it is dropped.
                start = len(buffer)
        rest = buffer[start:]
        if len(rest) > self._line_max():
            rest, self._skipping = b"", True
            self._received(None)
        self._buffer = rest

    def _line_max(self) -> int:
        limits = self._limits
        return limits.data_line_bytes_max if self.mode == smtp.DATA else limits.command_line_bytes_max

    def _received(self, line: Optional[bytes]) -> None:
        """C{line} is C{None} for a line over the limit."""
        if line is not None and len(line) > self._line_max():
            line = None
        if self._blocked or self._queue:
            self._queue.append(line)
            if len(self._queue) > self._limits.queued_lines_max and not self._paused:
                self._paused = True
                self.transport.pauseProducing()
            return
        self._process(line)

    def _process(self, line: Optional[bytes]) -> None:
        self.resetTimeout()
        try:
            if self.mode == smtp.DATA:
                self._data_line(line)
            elif line is None:
                self.sendCode(500, b"5.5.2 Line too long")
            elif _ends_badly(line):
                self.sendCode(500, b"5.5.2 Bare LF or CR in command: lines end with CRLF")
            else:
                self.state_COMMAND(line)
        except Exception:
            # A bug must not take the connection's other work down with it.
            self.log.failure("LMTP command failed")
            self.sendCode(*TEMPORARY_FAILURE)
        pending, self._pending = self._pending, None
        if pending is not None and not pending.called:
            self._blocked = True
            pending.addBoth(self._unblock)

    def _unblock(self, result: Any) -> None:
        self._blocked = False
        while self._queue and not self._blocked and not self.transport.disconnecting:
            self._process(self._queue.popleft())
        if self._paused and not self._queue:
            self._paused = False
            self.transport.resumeProducing()

    def lookupMethod(self, command: bytes):
        try:
            return super().lookupMethod(command)
        except UnicodeError:
            return None  # a non-ASCII verb: 500

    def connectionLost(self, reason) -> None:
        # Before the final dot nothing was proposed: the message is dropped.
        self._data, self._transaction, self._queue = bytearray(), None, collections.deque()
        super().connectionLost(reason)

    def lineReceived(self, line: bytes) -> None:
        self._received(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._received(None)

    # -- session commands --------------------------------------------------

    def do_HELO(self, rest: bytes) -> None:
        self.sendCode(500, b"5.5.1 This is LMTP: use LHLO (RFC 2033)")

    do_EHLO = do_HELO

    def do_LHLO(self, rest: bytes) -> None:
        if not rest:
            self.sendCode(501, b"5.5.4 LHLO needs a domain")
            return
        self._plain_reply = True
        try:
            smtp.ESMTP.do_EHLO(self, rest)
        finally:
            self._plain_reply = False
        self._lhlo = True

    def extensions(self) -> Dict[bytes, Optional[List[bytes]]]:
        ext: Dict[bytes, Optional[List[bytes]]] = {
            b"PIPELINING": None, b"8BITMIME": None, b"ENHANCEDSTATUSCODES": None,
            b"SIZE": [b"%d" % self._limits.message_bytes_max],
        }
        if self.canStartTLS and not self.startedTLS:
            ext[b"STARTTLS"] = None
        return ext

    def ext_STARTTLS(self, rest: bytes) -> None:
        if self.startedTLS:
            self.sendCode(503, b"5.5.1 TLS already active")
        elif not (self.ctx and self.canStartTLS):
            self.sendCode(454, b"4.7.0 TLS not available")
        elif rest:
            self.sendCode(501, b"5.5.4 STARTTLS takes no parameters")
        else:
            self.sendCode(220, b"2.0.0 Ready to start TLS")
            self.transport.startTLS(self.ctx)
            self.startedTLS = True
            # RFC 3207 4.2: forget everything said in plain text, including
            # lines pipelined after STARTTLS (they could be injected).
            self._queue.clear()
            self._buffer = b""
            self._lhlo, self._from, self._to = False, None, []

    def ext_AUTH(self, rest: bytes) -> None:
        self.do_UNKNOWN(rest)

    def do_NOOP(self, rest: bytes) -> None:
        self.sendCode(250, b"2.0.0 OK")

    def do_RSET(self, rest: bytes) -> None:
        self._from, self._to = None, []
        self.sendCode(250, b"2.0.0 OK")

    def do_QUIT(self, rest: bytes) -> None:
        self.sendCode(221, b"2.0.0 " + self.host + b" closing connection")
        self.transport.loseConnection()

    def do_UNKNOWN(self, rest: bytes) -> None:
        self.sendCode(500, b"5.5.1 Command not recognized")

    def sendSyntaxError(self) -> None:
        self.sendCode(500, b"5.5.2 Syntax error")

    def _may_transact(self) -> bool:
        if not self._lhlo:
            self.sendCode(503, b"5.5.1 Send LHLO first")
            return False
        if self._tls_only and not self.startedTLS:
            self.sendCode(530, b"5.7.0 Must issue a STARTTLS command first")
            return False
        return True

    # -- MAIL, RCPT --------------------------------------------------------

    def do_MAIL(self, rest: bytes) -> None:
        if not self._may_transact():
            return
        if self._from is not None:
            self.sendCode(503, b"5.5.1 Nested MAIL command")
            return
        match = self.mail_re.match(rest)
        if match is None:
            self.sendCode(501, b"5.5.4 Syntax: MAIL FROM:<address>")
            return
        refusal = self._mail_parameters(match.group("opts") or b"")
        if refusal is not None:
            self.sendCode(*refusal)
            return
        super().do_MAIL(rest)

    def _mail_parameters(self, opts: bytes) -> Optional[Tuple[int, bytes]]:
        for option in opts.split():
            name, _, value = option.partition(b"=")
            name = name.upper()
            if name == b"SIZE":
                if not value.isdigit():
                    return 501, b"5.5.4 SIZE needs a number"
                if int(value) > self._limits.message_bytes_max:
                    return TOO_BIG
            elif name == b"BODY":
                if value.upper() not in (b"7BIT", b"8BITMIME"):
                    return 501, b"5.5.4 BODY is 7BIT or 8BITMIME"
            else:
                return 555, b"5.5.4 Unsupported MAIL parameter " + name[:32]
        return None

    def validateFrom(self, helo, origin):
        return origin  # the MTA has already accepted the message

    def _cbFromValidate(self, fromEmail, code=250, msg=b"2.1.0 Sender OK"):
        super()._cbFromValidate(fromEmail, code, msg)

    def do_RCPT(self, rest: bytes) -> None:
        if self._may_transact():
            super().do_RCPT(rest)

    def validateTo(self, user: smtp.User) -> Deferred:
        if len(self._to) >= self._limits.recipients_max:
            raise smtp.SMTPServerError(452, "4.5.3 Too many recipients")
        address = str(user.dest)
        d = self._resolve(address)

        def found(recipient):
            if recipient is None:
                raise smtp.SMTPServerError(550, f"5.1.1 <{address}> No such user")
            return recipient

        def failed(failure):
            if failure.check(smtp.SMTPServerError):
                return failure
            self.log.failure("recipient lookup failed", failure)
            raise smtp.SMTPServerError(451, "4.3.0 Temporary failure, try again later")

        d.addCallback(found).addErrback(failed)
        self._pending = d
        return d

    def _cbToValidate(self, to, user=None, code=250, msg=b"2.1.5 Recipient OK"):
        super()._cbToValidate(to, user, code, msg)

    # -- DATA --------------------------------------------------------------

    def do_DATA(self, rest: bytes) -> None:
        if not self._may_transact():
            return
        if self._from is None or not self._to:
            # RFC 2033 4.2: no successful RCPT, DATA fails with 503.
            self.sendCode(503, b"5.5.1 No valid recipients")
            return
        peer = getattr(self.transport.getPeer(), "host", "")
        envelope = Envelope(
            sender=str(self._from), helo=self._helo[0].decode("ascii", "replace") if self._helo[0] else "",
            peer=str(peer), host=self.host.decode("ascii", "replace"),
            protocol="LMTPS" if self.startedTLS else "LMTP",
        )
        self._transaction = (envelope, [recipient for _, recipient in self._to])
        self._from, self._to = None, []
        self._data, self._data_error = bytearray(), None
        self.mode = smtp.DATA
        self.sendCode(354, b"Start mail input; end with <CRLF>.<CRLF>")

    def _data_line(self, line: Optional[bytes]) -> None:
        if line == b".":
            self.mode = smtp.COMMAND
            self._end_of_data()
            return
        if self._data_error is not None:
            return
        if line is None:
            self._refuse_data(LONG_LINE)
            return
        if line[:1] == b".":
            line = line[1:]
        if _ends_badly(line):
            self._refuse_data(BARE_NEWLINE)
            return
        if len(self._data) + len(line) + 2 > self._limits.message_bytes_max:
            self._refuse_data(TOO_BIG)
            return
        self._data += line
        self._data += b"\r\n"

    def _refuse_data(self, reply: Tuple[int, bytes]) -> None:
        self._data_error, self._data = reply, bytearray()

    def _end_of_data(self) -> None:
        (envelope, recipients), self._transaction = self._transaction, None
        if self._data_error is not None:
            for _ in recipients:
                self.sendCode(*self._data_error)
            return
        message, self._data = bytes(self._data), bytearray()
        d = self._deliver(envelope, [r.spec() for r in recipients], message)
        d.addTimeout(self._limits.delivery_seconds_max, self._clock)
        d.addCallbacks(self._replies, self._failed, callbackArgs=(recipients,), errbackArgs=(recipients,))
        if self._delivered is not None:
            d.addCallback(self._after, envelope, message)
        self._pending = d

    def _replies(self, result: Any, recipients: list) -> Any:
        if isinstance(result, Refused):
            self.log.error("delivery refused: {code} {detail}", code=result.code, detail=result.detail)
            self._failed(None, recipients)
            return None
        outcomes = result["recipients"]
        assert len(outcomes) == len(recipients), (outcomes, recipients)
        for outcome in outcomes:
            self.sendCode(*reply_for(outcome))
        return result

    def _failed(self, failure, recipients: list) -> None:
        if failure is not None:
            self.log.failure("delivery failed; answered 451", failure)
        for _ in recipients:
            self.sendCode(*TEMPORARY_FAILURE)

    def _after(self, result: Any, envelope: Envelope, message: bytes) -> None:
        if result is not None:
            try:
                self._delivered(envelope, message, result)
            except Exception:
                self.log.failure("after-delivery hook failed")
