# -*- test-case-name: tests.mail.test_relay -*-
"""
Sending through the configured SMTP relay (RFC 5321 client, RFC 3207
STARTTLS, RFC 8314 implicit TLS, RFC 4954 AUTH PLAIN/LOGIN).

The core is pure: L{outgoing_message} (the bytes to send: Bcc removed,
RFC 8621 7.5), L{reply_text} (an SMTP reply as RFC 8621 7 smtpReply),
and L{delivery_outcome} (per-recipient replies -> deliveryStatus and who
to try again).  The shell, L{SmtpRelay}, runs one SMTP transaction with
twisted.mail's L{ESMTPSenderFactory} and always fires with one reply per
recipient: a connection or TLS failure becomes a synthetic reply
(C{451 4.4.1 ...}) for each of them.

Retry policy: a 4xx reply (or a failure to reach the relay) leaves the
recipient queued for another attempt after L{RETRY_SECONDS}[attempt];
after the last one it is C{delivered: "no"}.  A 5xx reply is final.
"""

from __future__ import annotations

import re
from io import BytesIO
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

__all__ = [
    "RelayConfig", "SmtpRelay", "NoRelay", "outgoing_message", "reply_text", "delivery_outcome",
    "parse_secret", "RETRY_SECONDS", "relay_from_config",
]

#: Seconds to wait before each further attempt of recipients that got a
#: 4xx reply: 1 min, 10 min, 1 h, 4 h; after that they count as failed.
#: About five hours in all: enough for a relay restart or a greylist,
#: short enough that the user learns of a failure the same day.
RETRY_SECONDS = (60.0, 600.0, 3600.0, 14400.0)

TLS_MODES = ("starttls", "tls", "none")
AUTH_MODES = ("none", "plain", "login")


@attrs.frozen
class RelayConfig:
    """
    @ivar host: the relay's name or address; C{None}: no relay, every
        submission fails with C{554 5.3.5}.
    @ivar port: its port; 587 (submission, RFC 6409) with STARTTLS, 465
        with implicit TLS.
    @ivar tls: C{"starttls"} (required: no plain-text fallback), C{"tls"}
        (RFC 8314 implicit TLS) or C{"none"} (only for a relay on a trusted
        network).
    @ivar auth: C{"none"}, C{"plain"} or C{"login"}.
    @ivar username: @ivar password: the AUTH credentials.
    @ivar timeout_seconds: longest wait for any reply of the relay; RFC 5321
        4.5.3.2 suggests minutes, and the outbox retries anyway.
    """

    host: Optional[str] = None
    port: int = 587
    tls: str = attrs.field(default="starttls", validator=attrs.validators.in_(TLS_MODES))
    auth: str = attrs.field(default="none", validator=attrs.validators.in_(AUTH_MODES))
    username: Optional[str] = None
    password: Optional[str] = attrs.field(default=None, repr=False)
    timeout_seconds: float = 120.0

    def __attrs_post_init__(self) -> None:
        if self.auth != "none" and (self.username is None or self.password is None):
            raise ValueError("smtp-relay-auth needs smtp-relay-secret (user:password)")


def parse_secret(text: str) -> Tuple[str, str]:
    """C{"user:password"} -> (user, password); ValueError without a colon."""
    user, colon, password = text.strip("\r\n").partition(":")
    if not colon or not user:
        raise ValueError("smtp-relay-secret must be user:password")
    return user, password


# -- the pure core ----------------------------------------------------------

_HEADER_END = re.compile(rb"\r?\n\r?\n")


def outgoing_message(raw: bytes) -> bytes:
    """
    The message as sent: every C{Bcc} field (with its continuation lines)
    removed from the header block (RFC 8621 7.5); the rest unchanged, with
    CRLF line ends as SMTP requires.
    """
    match = _HEADER_END.search(raw)
    head, body = (raw[:match.start()], raw[match.start():]) if match else (raw, b"")
    kept: List[bytes] = []
    dropping = False
    for line in head.splitlines():
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = line.split(b":", 1)[0].strip().lower() == b"bcc"
        if not dropping:
            kept.append(line)
    body = b"\r\n".join(body.splitlines()) + (b"\r\n" if body.endswith(b"\n") else b"")
    return b"\r\n".join(kept) + body


_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3} ")


def reply_text(code: int, text: str) -> str:
    """
    One SMTP reply as the smtpReply string of RFC 8621 7: the lines joined
    by spaces, each later line without the enhanced status code it
    repeats from the first.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()] or [""]
    first = _ENHANCED.match(lines[0])
    prefix = first.group(0) if first else None
    rest = [line[len(prefix):] if prefix and line.startswith(prefix) else line for line in lines[1:]]
    return " ".join([f"{code:03d} {lines[0]}".rstrip(), *rest])


def delivery_outcome(replies: Mapping[str, Tuple[int, str]], attempts: int,
                     retry_seconds: Sequence[float] = RETRY_SECONDS, now: float = 0.0):
    """
    What one attempt means for each recipient.

    @param replies: recipient -> the reply that decides it: the RCPT reply,
        or the DATA reply when that refused the message.
    @param attempts: attempts made before this one.
    @return: C{(statuses, retry, retry_at)}: C{{rcpt: {smtpReply,
        delivered}}}, the recipients to try again, and when (seconds).
    """
    can_retry = attempts < len(retry_seconds)
    statuses: Dict[str, Dict[str, str]] = {}
    retry: List[str] = []
    for rcpt, (code, text) in replies.items():
        reply = reply_text(code, text)
        if 200 <= code < 300:
            # Accepted by the relay: the final outcome is not known here
            # (RFC 8621 7: relaying is not delivery).
            statuses[rcpt] = {"smtpReply": reply, "delivered": "unknown"}
        elif 400 <= code < 500 and can_retry:
            statuses[rcpt] = {"smtpReply": reply, "delivered": "queued"}
            retry.append(rcpt)
        else:
            statuses[rcpt] = {"smtpReply": reply, "delivered": "no"}
    retry_at = now + retry_seconds[attempts] if retry else None
    return statuses, retry, retry_at


# -- the shell --------------------------------------------------------------


class NoRelay:
    """The relay when smtp-relay-host is not set: every recipient is refused."""

    #: Vacation replies are not even attempted without a relay.
    configured = False

    def send(self, mail_from: str, rcpts: Sequence[str], message: bytes) -> Deferred:
        return succeed({r: (554, "5.3.5 No SMTP relay is configured (smtp-relay-host)") for r in rcpts})


class SmtpRelay:
    """
    One SMTP transaction per L{send}, on a new connection.

    @param reactor: provides IReactorTCP and IReactorTime (and IReactorSSL
        for implicit TLS); never the global reactor.
    @param client_tls: the TLS client options; by default the system trust
        roots and the relay's host name are verified
        (C{optionsForClientTLS}).
    """

    log = Logger()

    def __init__(self, config: RelayConfig, reactor, client_tls=None, helo: str = "localhost") -> None:
        assert config.host is not None
        self.config = config
        self._reactor = reactor
        self._helo = helo
        if client_tls is None and config.tls != "none":
            from twisted.internet.ssl import optionsForClientTLS

            client_tls = optionsForClientTLS(config.host)
        self._tls = client_tls

    def send(self, mail_from: str, rcpts: Sequence[str], message: bytes) -> Deferred:
        """Fires with C{{rcpt: (code, text)}} for every recipient; never fails."""
        if not mail_from.isascii() or not all(r.isascii() for r in rcpts):
            return succeed({r: (553, "5.6.7 Non-ASCII addresses need SMTPUTF8, which is not supported")
                            for r in rcpts})
        c = self.config
        done: Deferred = Deferred()
        factory = _factory_class()(
            c.username, c.password, mail_from, list(rcpts), BytesIO(_lf(message)), done, retries=0,
            timeout=c.timeout_seconds, contextFactory=self._tls if c.tls == "starttls" else None,
            requireAuthentication=c.auth != "none", requireTransportSecurity=c.tls == "starttls",
            hostname=c.host,
        )
        factory.domain = self._helo.encode("idna")
        factory.protocol = _sender_class(c.auth)
        if c.tls == "tls":
            self._reactor.connectSSL(c.host, c.port, factory, self._tls, timeout=c.timeout_seconds)
        else:
            self._reactor.connectTCP(c.host, c.port, factory, timeout=c.timeout_seconds)
        done.addCallbacks(lambda result: _replies(rcpts, result[1]), lambda f: _failed(rcpts, f))
        # Fire once the connection is closed too: nothing is left behind.
        return done.addCallback(lambda replies: factory.closed.addCallback(lambda _: replies))


def _factory_class():
    from twisted.mail.smtp import ESMTPSenderFactory

    class Factory(ESMTPSenderFactory):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.closed: Deferred = Deferred()

        def clientConnectionFailed(self, connector, err):
            super().clientConnectionFailed(connector, err)
            self._closed()

        def clientConnectionLost(self, connector, err):
            super().clientConnectionLost(connector, err)
            self._closed()

        def _closed(self):
            if not self.closed.called:
                self.closed.callback(None)

    return Factory


def _lf(message: bytes) -> bytes:
    # twisted.mail's client turns every LF into CRLF (and dot-stuffs) as
    # it sends: it must be given LF line ends, or CR CR LF goes out.
    return message.replace(b"\r\n", b"\n")


def _sender_class(auth: str):
    from twisted.mail.smtp import ESMTPSender, LOGINAuthenticator, PLAINAuthenticator

    class Sender(ESMTPSender):
        # Only the configured AUTH mechanism: never a weaker one offered.
        def _registerAuthenticators(self):
            if auth == "plain":
                self.registerAuthenticator(PLAINAuthenticator(self.username))
            elif auth == "login":
                self.registerAuthenticator(LOGINAuthenticator(self.username))

        def _getContextFactory(self):
            # Called only without contextFactory: no STARTTLS then.  With
            # implicit TLS, ESMTPClient sees the TLS transport itself.
            return None

    return Sender


def _decode(data) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)


def _replies(rcpts: Sequence[str], addresses) -> Dict[str, Tuple[int, str]]:
    """Per-recipient replies of a transaction the relay accepted."""
    by_address = {_decode(a).lower(): (code, _decode(resp)) for a, code, resp in addresses}
    return {r: by_address.get(r.lower(), (250, "2.0.0 Accepted")) for r in rcpts}


def _failed(rcpts: Sequence[str], failure) -> Dict[str, Tuple[int, str]]:
    from twisted.mail.smtp import SMTPClientError

    error = failure.value
    if isinstance(error, SMTPClientError) and error.code >= 400:
        # The transaction failed: recipients refused at RCPT keep their
        # reply; the others share the reply that ended it (DATA, MAIL).
        refused = {}
        for address, code, resp in error.addresses or ():
            if code >= 400:
                refused[_decode(address).lower()] = (code, _decode(resp))
        reply = (error.code, _decode(error.resp))
        return {r: refused.get(r.lower(), reply) for r in rcpts}
    SmtpRelay.log.warn("SMTP relay unreachable: {error}", error=error)
    text = f"4.4.1 Relay unreachable: {_decode(getattr(error, 'resp', None) or error)}"
    return {r: (451, " ".join(text.split())) for r in rcpts}


def relay_from_config(config, reactor):
    """The relay for a L{ServerConfig} (reads smtp-relay-secret's file here, at the edge)."""
    if config.smtp_relay_host is None:
        return NoRelay()
    username = password = None
    secret = config.smtp_relay_secret
    if secret is not None:
        if secret.startswith(("/", ".")):
            from stalwart.service.errors import ConfigError

            try:
                with open(secret) as f:
                    secret = f.read()
            except OSError as e:
                raise ConfigError(f"smtp-relay-secret: cannot read {secret}: {e}") from None
        username, password = parse_secret(secret)
    relay_config = RelayConfig(
        host=config.smtp_relay_host, port=config.smtp_relay_port, tls=config.smtp_relay_tls,
        auth=config.smtp_relay_auth, username=username, password=password)
    return SmtpRelay(relay_config, reactor)
