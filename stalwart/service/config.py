# -*- test-case-name: tests.service.test_config -*-
"""
The configuration of one stalwart-jmap node: the table of keys and the frozen
L{ServerConfig} built from it.

L{KEYS} is the single declarative list of configuration keys. Each L{Key}
gives the name used on the command line and in the configuration file, the
default, the L{Kind} of value (which parses text and checks values) and the
help text. L{stalwart.service.options} reads text from the command line and
the configuration file through this table; embedders build a L{ServerConfig}
directly and get the same defaults and the same checks.

To add a key: add one L{Key} to L{KEYS} and one field to L{ServerConfig}
(C{_field("the-key")}); the test suite checks that the two agree.

This module does no I/O: checks that read files (certificates) are done at the
edge, in L{stalwart.service.options}.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Callable, Optional
from urllib.parse import urlsplit

import attrs

from stalwart.service.errors import ConfigError

__all__ = ["KEYS", "KEYS_BY_NAME", "Key", "Kind", "ServerConfig", "derive_jmap_url"]


@attrs.frozen
class Kind:
    """
    A kind of configuration value: how text becomes a value, and which values
    are allowed.

    @ivar describe: What an allowed value is, completing the sentence
        "X is not ...", e.g. C{"a port number (0-65535)"}.
    @ivar convert: Turns stripped, non-empty text into a value; raises
        L{ValueError} (or returns a value L{allows} refuses) for bad text.
    @ivar allows: Whether a value (parsed, or given by an embedder) is allowed.
    """

    describe: str
    convert: Callable[[str], object]
    allows: Callable[[object], bool]

    def parse(self, text: str) -> object:
        """
        Parse one value as written on the command line or in the file.

        @param text: The text, already stripped and not empty.
        @return: The value.
        @raise ValueError: With a message such as
            C{"'abc' is not a port number (0-65535)"}, not naming the key.
        """
        try:
            value = self.convert(text)
        except ValueError:
            value = _REFUSED
        if value is _REFUSED or not self.allows(value):
            raise ValueError(f"{text!r} is not {self.describe}")
        return value

    def check(self, value: object) -> None:
        """
        Check a value given directly (for example by an embedder).

        @raise ValueError: With a message such as
            C{"70000 is not a port number (0-65535)"}.
        """
        if not self.allows(value):
            raise ValueError(f"{value!r} is not {self.describe}")


_REFUSED = object()


def _integer(minimum: int, maximum: Optional[int], describe: str) -> Kind:
    def allows(value: object) -> bool:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and value >= minimum
            and (maximum is None or value <= maximum)
        )

    return Kind(describe, lambda text: int(text, 10), allows)


_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _boolean(text: str) -> object:
    return _BOOLEANS.get(text.lower(), _REFUSED)


_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


def _is_host(value: object) -> bool:
    """
    Whether C{value} is a host name or a literal IPv4 or IPv6 address.
    """
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return _HOST_NAME.match(value) is not None


def _is_endpoint(value: object) -> bool:
    """
    Whether C{value} is C{host}, C{host:port} or C{[ipv6]:port}.
    """
    if not isinstance(value, str):
        return False
    if _is_host(value):
        return True
    host, colon, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            return False
    return bool(colon) and _is_host(host) and PORT.allows(_to_int(port))


def _to_int(text: str) -> object:
    return int(text) if re.fullmatch(r"[0-9]{1,5}", text) else None


def _host_list(text: str) -> tuple[str, ...]:
    separator = ";" if ";" in text else ","
    return tuple(entry.strip() for entry in text.split(separator) if entry.strip())


def _is_network(value: object) -> bool:
    """
    Whether C{value} is an IP address or a network in CIDR notation.
    """
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # raises ValueError for a bad port
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not parts.query
        and not parts.fragment
        and not parts.username
    )


def _is_text(value: object) -> bool:
    return isinstance(value, str) and value != "" and "\n" not in value


PORT = _integer(0, 65535, "a port number (0-65535)")
COUNT = _integer(1, None, "a whole number >= 1")
COUNT_OR_ZERO = _integer(0, None, "a whole number >= 0")
NAME_LENGTH = _integer(100, 65535, "a length in octets from 100 to 65535")
SIZE = _integer(1, None, "a size in bytes >= 1")
MILLISECONDS = _integer(0, None, "a duration in milliseconds >= 0")
POSITIVE_MILLISECONDS = _integer(1, None, "a duration in milliseconds >= 1")
PUSH_EXPIRY = _integer(172_800_000, None, "a duration in milliseconds of at least 48 hours (172800000)")
BOOLEAN = Kind("a boolean (true, false, yes, no, 1, 0)", _boolean, lambda v: isinstance(v, bool))
HOST = Kind("a host name or IP address", str, _is_host)
HOST_LIST = Kind(
    "a list of host or host:port separated by ';'",
    _host_list,
    lambda v: isinstance(v, tuple) and all(_is_endpoint(e) for e in v),
)
NETWORK_LIST = Kind(
    "a list of IP addresses or networks (CIDR) separated by ';'",
    _host_list,
    lambda v: isinstance(v, tuple) and all(_is_network(e) for e in v),
)
HTTP_URL = Kind(
    "an http:// or https:// URL without query or fragment",
    lambda text: text.rstrip("/"),
    _is_http_url,
)
PATH = Kind("a file or directory path", str, _is_text)
SECRET = Kind("a non-empty single-line secret", str, _is_text)
SECRET_LIST = Kind(
    "a list of secrets separated by ';'",
    lambda text: tuple(entry.strip() for entry in text.split(";") if entry.strip()),
    lambda v: isinstance(v, tuple) and all(_is_text(e) for e in v),
)
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")
LOG_LEVEL = Kind(
    "one of " + ", ".join(LOG_LEVELS), str.lower, lambda v: v in LOG_LEVELS
)


@attrs.frozen
class Key:
    """
    One configuration key.

    @ivar name: The name on the command line (C{--name=value}) and in the
        configuration file (C{name: value}), in kebab-case.
    @ivar default: The value used when the key is not given; C{None} for keys
        that are off (or derived) unless given.
    @ivar kind: The L{Kind} of value.
    @ivar help: One or two sentences for C{--help}: what, unit, why.
    @ivar default_help: How C{--help} shows the default, when C{str(default)}
        would not say it well.
    """

    name: str
    default: object
    kind: Kind
    help: str
    default_help: Optional[str] = None

    @property
    def attribute(self) -> str:
        """
        The L{ServerConfig} field name: the key name in snake_case.
        """
        return self.name.replace("-", "_")

    def describe_default(self) -> str:
        """
        The default as written in C{--help} and conf/stalwart-jmap.yml.
        """
        if self.default_help is not None:
            return self.default_help
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if self.default is None or self.default == ():
            return "none"
        return str(self.default)


RELAY_TLS = Kind("one of starttls, tls, none", str.lower, lambda v: v in ("starttls", "tls", "none"))
RELAY_AUTH = Kind("one of none, plain, login", str.lower, lambda v: v in ("none", "plain", "login"))
REDIRECT_STATUS = Kind(
    "one of 302, 307, 308",
    lambda text: int(text, 10),
    lambda v: isinstance(v, int) and not isinstance(v, bool) and v in (302, 307, 308),
)
ELECTION_TIMEOUT = _integer(200, None, "a duration in milliseconds >= 200")


KEYS: tuple[Key, ...] = (
    Key("data-dir", "./stalwart-data", PATH,
        "Directory for the Raft log, state.db and blobs; created at start if missing. "
        "A cluster node given no data-dir uses ./stalwart-data-<jmap-port>. One process per directory (locked)."),
    Key("jmap-url", None, HTTP_URL,
        "Public base URL of this node's JMAP service, used in the session resource "
        "and in redirects to the leader. Set it when clients reach the node by "
        "another name or through a proxy.",
        "http(s)://<jmap-bind-addr>:<jmap-port>, https when a certificate is given"),
    Key("jmap-bind-addr", "127.0.0.1", HOST,
        "IP address the JMAP listener binds; 0.0.0.0 or :: for every interface."),
    Key("jmap-port", 8080, PORT,
        "TCP port of the JMAP listener; 0 picks a free port."),
    Key("jmap-cert-path", None, PATH,
        "PEM certificate (chain) for HTTPS; give it with jmap-key-path.",
        "none: plain HTTP"),
    Key("jmap-key-path", None, PATH,
        "Unencrypted PEM private key for HTTPS; give it with jmap-cert-path.",
        "none: plain HTTP"),
    Key("max-size-upload", 50_000_000, SIZE,
        "Largest blob upload, in bytes (JMAP maxSizeUpload); uploads travel "
        "through the replicated log, so large values cost memory and disk on "
        "every node."),
    Key("max-size-request", 10_000_000, SIZE,
        "Largest JMAP API request body, in bytes (JMAP maxSizeRequest)."),
    Key("max-concurrent-requests", 4, COUNT,
        "API requests one account may have in progress at once "
        "(JMAP maxConcurrentRequests)."),
    Key("max-calls-in-request", 16, COUNT,
        "Method calls in one API request (JMAP maxCallsInRequest)."),
    Key("max-objects-in-get", 500, COUNT,
        "Ids in one /get call (JMAP maxObjectsInGet)."),
    Key("max-objects-in-set", 500, COUNT,
        "Creates, updates and destroys in one /set call (JMAP maxObjectsInSet)."),
    Key("query-max-results", 5000, COUNT,
        "Ids one /query call returns at most; bounds the work of one call."),
    Key("changes-max-results", 5000, COUNT,
        "Ids one /changes call returns at most; clients page with sinceState."),
    Key("event-source-throttle", 1000, MILLISECONDS,
        "Least time between two StateChange pushes to one EventSource, WebSocket "
        "or PushSubscription, in milliseconds; changes meanwhile are merged into "
        "the next. A second keeps a busy account from flooding its clients while "
        "new mail still shows within a second."),
    Key("ws-heartbeat-interval", 30000, POSITIVE_MILLISECONDS,
        "Time between WebSocket pings from the server, in milliseconds; shorter "
        "than the idle timeouts of common proxies and NATs (60 s or more)."),
    Key("ws-client-timeout", 90000, POSITIVE_MILLISECONDS,
        "A WebSocket that sent nothing, not even a pong, for this long is closed, "
        "in milliseconds; three heartbeats, so one lost pong is forgiven."),
    Key("push-attempts-max", 3, COUNT,
        "Attempts to POST one push message to a PushSubscription's URL before "
        "it is dropped; clients resync on their next request anyway."),
    Key("push-retry-interval", 10000, POSITIVE_MILLISECONDS,
        "Wait before retrying a failed push POST, in milliseconds (at least this "
        "long after a 429); changes meanwhile go in the retry."),
    Key("push-timeout", 10000, POSITIVE_MILLISECONDS,
        "Time a push service has to answer one POST, in milliseconds; a slow "
        "one must not hold connections on the leader."),
    Key("push-expires-max", 604_800_000, PUSH_EXPIRY,
        "Latest expiry a PushSubscription may have, from now, in milliseconds "
        "(7 days). RFC 8620 7.2 asks for at least 48 hours and recommends 7 days, "
        "so that a phone app that is rarely in the foreground can renew it."),
    Key("admin-secret", None, SECRET,
        "Bearer secret for the /admin HTTP API used by stalwart-jmap-admin; "
        "use a long random value.",
        "none: admin API disabled"),
    Key("log-level", "info", LOG_LEVEL,
        "Least severe log level written: debug, info, warn, error or critical."),
    Key("encryption-key", None, SECRET,
        "Cluster secret, identical on every node: it seals gossip and admits RPC peers.",
        "none: single node"),
    Key("encryption-key-accept", (), SECRET_LIST,
        "Further cluster keys accepted from peers (RPC and gossip), separated "
        "by ';', while a new encryption-key is rolled out: add the new key "
        "here on every node, then make it encryption-key everywhere, then "
        "remove the old one."),
    Key("seed-nodes", (), HOST_LIST,
        "Cluster nodes to contact at start, host or host:port (rpc-port when "
        "omitted), separated by ';'. One reachable seed is enough.",
        "none: single node"),
    Key("rpc-advertise-addr", None, HOST,
        "Address other nodes use to reach this node's rpc-port.",
        "none: single node"),
    Key("rpc-bind-addr", "127.0.0.1", HOST,
        "IP address the cluster RPC (TCP) and gossip (UDP) sockets bind."),
    Key("rpc-port", 7911, PORT,
        "Port for cluster RPC over TCP and gossip over UDP."),
    Key("peer-ping-interval", 500, POSITIVE_MILLISECONDS,
        "Gossip: one member is probed per interval, in turn, in milliseconds; "
        "a crashed node is detected in about three intervals."),
    Key("rpc-cert-path", None, PATH,
        "PEM certificate of the cluster RPC's TLS; without it a self-signed "
        "one is made in data-dir (peers are admitted by encryption-key, not "
        "by certificate)."),
    Key("rpc-key-path", None, PATH,
        "PEM private key for rpc-cert-path."),
    Key("read-replica", False, BOOLEAN,
        "Replicate and serve reads, but never vote or lead (true or false)."),
    Key("redirect-status", 302, REDIRECT_STATUS,
        "HTTP status a write reaching a non-leader is redirected to the leader "
        "with: 302, or the method-preserving 307 or 308."),
    Key("rpc-timeout", 1000, POSITIVE_MILLISECONDS,
        "Time to connect to a peer, finish TLS and be admitted, in milliseconds."),
    Key("rpc-backoff-max", 2000, POSITIVE_MILLISECONDS,
        "Cap of the exponential back-off between reconnects to a peer, in "
        "milliseconds; a restarted node hears nothing until its peers "
        "reconnect, so keep it short."),
    Key("raft-election-timeout", 1000, ELECTION_TIMEOUT,
        "Least time without a leader before a node stands for election, in "
        "milliseconds (at least 200)."),
    Key("raft-batch-max", 10_485_760, SIZE,
        "Largest AppendEntries payload sent to one follower, in bytes."),
    Key("raft-snapshot-entries", 10000, COUNT_OR_ZERO,
        "Entries applied between snapshots of the state (state.db and blobs); "
        "the log before a snapshot is deleted, and a follower too far behind "
        "receives the snapshot. 0 never snapshots (the log grows for ever)."),
    Key("lmtp-bind-addr", "127.0.0.1", HOST,
        "IP address the LMTP listener (RFC 2033) binds; the MTA hands mail over there."),
    Key("lmtp-port", 11200, PORT,
        "TCP port of the LMTP listener; 0 disables LMTP. A cluster node given "
        "no lmtp-port uses 11200 + (jmap-port - 8080)."),
    Key("lmtp-cert-path", None, PATH,
        "PEM certificate (chain) offered by LMTP STARTTLS; give it with lmtp-key-path.",
        "none: no STARTTLS"),
    Key("lmtp-key-path", None, PATH,
        "Unencrypted PEM private key for LMTP STARTTLS; give it with lmtp-cert-path.",
        "none: no STARTTLS"),
    Key("lmtp-tls-only", False, BOOLEAN,
        "Refuse mail transactions (530) until the client has done STARTTLS; "
        "needs lmtp-cert-path and lmtp-key-path."),
    Key("lmtp-trusted-ips", ("127.0.0.1", "::1"), NETWORK_LIST,
        "Addresses or CIDR networks allowed to connect to LMTP, separated by ';'; "
        "others get 554 and are disconnected. LMTP has no authentication: only "
        "the MTA may reach it.",
        "127.0.0.1;::1"),
    Key("mail-max-size", 50_000_000, SIZE,
        "Largest message accepted by LMTP (announced as SIZE), imported, created "
        "by Email/set or parsed by Email/parse, in bytes. Like an "
        "upload, a message travels through the replicated log and is held in "
        "memory while it arrives, so it matches max-size-upload."),
    Key("mail-import-max-items", 100, COUNT,
        "Messages in one Email/import call (more: requestTooLarge). The whole "
        "call is one log entry whose apply parses every message while other "
        "writes wait; 100 typical messages parse in well under a second."),
    Key("mail-parse-max-items", 100, COUNT,
        "Blobs in one Email/parse call (more: requestTooLarge); each is read "
        "and parsed on a reader thread for that one call."),
    Key("mailbox-name-max-len", 255, NAME_LENGTH,
        "Longest Mailbox name, in UTF-8 octets (maxSizeMailboxName); RFC 8621 "
        "asks for at least 100, and 255 fits any IMAP client's folder name."),
    Key("mailbox-max-total", 1000, COUNT,
        "Mailboxes one account may have; Mailbox/get and /query read all of "
        "an account's Mailboxes, so this bounds their cost."),
    Key("mailbox-max-depth", 10, COUNT,
        "Levels of the Mailbox hierarchy (maxMailboxDepth); every parent "
        "check walks the ancestors, and no client shows more than a few."),
    Key("smtp-relay-host", None, HOST,
        "SMTP relay (submission server) that EmailSubmission and vacation "
        "auto-replies send through; only the Raft leader sends.",
        "none: every submission fails, with deliveryStatus 554 5.3.5"),
    Key("smtp-relay-port", 587, PORT,
        "Port of the SMTP relay: 587 for submission with STARTTLS (RFC 6409), "
        "465 for implicit TLS (RFC 8314)."),
    Key("smtp-relay-tls", "starttls", RELAY_TLS,
        "starttls (required, never a plain-text fallback), tls (implicit TLS) or "
        "none (a relay on a trusted network only). The relay's certificate is "
        "verified against the system trust roots and smtp-relay-host."),
    Key("smtp-relay-auth", "none", RELAY_AUTH,
        "SMTP AUTH mechanism for the relay: none, plain or login (RFC 4954); "
        "needs smtp-relay-secret."),
    Key("smtp-relay-secret", None, SECRET,
        "Credentials for smtp-relay-auth: user:password, or the path (starting "
        "with / or .) of a file holding user:password.",
        "none"),
)

KEYS_BY_NAME: dict[str, Key] = {key.name: key for key in KEYS}


def _field(name: str, optional: Optional[bool] = None, **kwargs: object) -> object:
    """
    An attrs field whose default and check come from the L{Key} C{name}.

    @param optional: Whether C{None} is allowed; by default, when the key's
        default is C{None}.
    """
    key = KEYS_BY_NAME[name]
    if optional is None:
        optional = key.default is None

    def check(instance: object, attribute: object, value: object) -> None:
        if value is None and optional:
            return
        try:
            key.kind.check(value)
        except ValueError as e:
            raise ConfigError(f"{name}: {e}") from None

    kwargs.setdefault("default", key.default)
    return attrs.field(validator=check, **kwargs)  # type: ignore[call-overload]


def _tuple(value: object) -> object:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def derive_jmap_url(bind_addr: str, port: int, tls: bool) -> str:
    """
    The JMAP URL a node has when C{jmap-url} is not given.

    @param bind_addr: The listener's address; IPv6 literals get brackets.
    @param port: The listener's port.
    @param tls: Whether the listener speaks HTTPS.
    """
    host = f"[{bind_addr}]" if ":" in bind_addr else bind_addr
    return f"{'https' if tls else 'http'}://{host}:{port}"


def _check_pair(prefix: str, cert_path: Optional[str], key_path: Optional[str], hint: str) -> None:
    """A certificate goes with its key: C{<prefix>-cert-path} and C{<prefix>-key-path} both or neither."""
    if (cert_path is None) != (key_path is None):
        given, missing = ("cert", "key") if key_path is None else ("key", "cert")
        raise ConfigError(f"{prefix}-{given}-path: given without {prefix}-{missing}-path ({hint})")


@attrs.frozen(kw_only=True)
class ServerConfig:
    """
    The configuration of one node: one field per L{Key}, in snake_case.

    Build it with keywords (C{ServerConfig(data_dir="/var/lib/stalwart")});
    the other fields take the defaults of L{KEYS}. A bad value, or
    C{jmap_cert_path} without C{jmap_key_path} (or the reverse), raises
    L{ConfigError} naming the key. Fields are documented, with units and
    reasons for their defaults, by L{KEYS} and conf/stalwart-jmap.yml.
    """

    data_dir: str = _field("data-dir")
    """Directory of the Raft log, state.db and blobs."""
    jmap_bind_addr: str = _field("jmap-bind-addr")
    """IP address of the JMAP listener."""
    jmap_port: int = _field("jmap-port")
    """TCP port of the JMAP listener (0: any free port)."""
    jmap_cert_path: Optional[str] = _field("jmap-cert-path")
    """PEM certificate for HTTPS, or C{None} for plain HTTP."""
    jmap_key_path: Optional[str] = _field("jmap-key-path")
    """PEM private key for HTTPS, or C{None} for plain HTTP."""
    jmap_url: str = _field(
        "jmap-url",
        optional=False,
        default=attrs.Factory(
            lambda self: derive_jmap_url(
                self.jmap_bind_addr, self.jmap_port, self.jmap_cert_path is not None
            ),
            takes_self=True,
        ),
        converter=lambda url: url.rstrip("/") if isinstance(url, str) else url,
    )
    """Public base URL of this node's JMAP service, without a trailing slash."""
    max_size_upload: int = _field("max-size-upload")
    """Largest upload, in bytes."""
    max_size_request: int = _field("max-size-request")
    """Largest API request body, in bytes."""
    max_concurrent_requests: int = _field("max-concurrent-requests")
    """API requests in progress at once per account."""
    max_calls_in_request: int = _field("max-calls-in-request")
    """Method calls in one API request."""
    max_objects_in_get: int = _field("max-objects-in-get")
    """Ids in one /get call."""
    max_objects_in_set: int = _field("max-objects-in-set")
    """Creates, updates and destroys in one /set call."""
    query_max_results: int = _field("query-max-results")
    """Ids returned by one /query call."""
    changes_max_results: int = _field("changes-max-results")
    """Ids returned by one /changes call."""
    event_source_throttle: int = _field("event-source-throttle")
    """Least time between two StateChange pushes to one client, in milliseconds."""
    ws_heartbeat_interval: int = _field("ws-heartbeat-interval")
    """Time between WebSocket pings, in milliseconds."""
    ws_client_timeout: int = _field("ws-client-timeout")
    """Silence after which a WebSocket is closed, in milliseconds."""
    push_attempts_max: int = _field("push-attempts-max")
    """Attempts to POST one push message."""
    push_retry_interval: int = _field("push-retry-interval")
    """Wait before retrying a push POST, in milliseconds."""
    push_timeout: int = _field("push-timeout")
    """Time a push service has to answer, in milliseconds."""
    push_expires_max: int = _field("push-expires-max")
    """Latest PushSubscription expiry from now, in milliseconds."""
    admin_secret: Optional[str] = _field("admin-secret")
    """Bearer secret of the admin API, or C{None}: admin API disabled."""
    log_level: str = _field("log-level")
    """One of debug, info, warn, error, critical."""
    encryption_key: Optional[str] = _field("encryption-key")
    """Cluster secret shared by every node, or C{None}."""
    encryption_key_accept: tuple[str, ...] = _field("encryption-key-accept", converter=_tuple)
    """Further cluster keys accepted from peers during a key rotation."""
    seed_nodes: tuple[str, ...] = _field("seed-nodes", converter=_tuple)
    """Cluster nodes to contact at start: host or host:port."""
    rpc_advertise_addr: Optional[str] = _field("rpc-advertise-addr")
    """Address peers use to reach rpc_port, or C{None}."""
    rpc_bind_addr: str = _field("rpc-bind-addr")
    """IP address of the RPC and gossip sockets."""
    rpc_port: int = _field("rpc-port")
    """Port of cluster RPC (TCP) and gossip (UDP)."""
    peer_ping_interval: int = _field("peer-ping-interval")
    """Milliseconds between gossip probes."""
    rpc_cert_path: Optional[str] = _field("rpc-cert-path")
    """PEM certificate of the RPC TLS listener, or C{None} for a generated one."""
    rpc_key_path: Optional[str] = _field("rpc-key-path")
    """PEM key of rpc_cert_path."""
    read_replica: bool = _field("read-replica")
    """Whether this node only replicates and serves reads."""
    redirect_status: int = _field("redirect-status")
    """HTTP status of redirects from a non-leader: 302, 307 or 308."""
    rpc_timeout: int = _field("rpc-timeout")
    """Time to connect, finish TLS and be admitted by a peer, in milliseconds."""
    rpc_backoff_max: int = _field("rpc-backoff-max")
    """Longest wait between reconnects to a peer, in milliseconds."""
    raft_election_timeout: int = _field("raft-election-timeout")
    """Election timeout, in milliseconds (at least 200)."""
    raft_batch_max: int = _field("raft-batch-max")
    raft_snapshot_entries: int = _field("raft-snapshot-entries")
    """Entries applied between snapshots; 0 for none."""
    """Largest AppendEntries payload, in bytes."""
    lmtp_bind_addr: str = _field("lmtp-bind-addr")
    """IP address of the LMTP listener."""
    lmtp_port: int = _field("lmtp-port")
    """TCP port of the LMTP listener (0: LMTP disabled)."""
    lmtp_cert_path: Optional[str] = _field("lmtp-cert-path")
    """PEM certificate for LMTP STARTTLS, or C{None}: no STARTTLS."""
    lmtp_key_path: Optional[str] = _field("lmtp-key-path")
    """PEM private key for LMTP STARTTLS, or C{None}: no STARTTLS."""
    lmtp_tls_only: bool = _field("lmtp-tls-only")
    """Whether mail transactions need STARTTLS first."""
    lmtp_trusted_ips: tuple[str, ...] = _field("lmtp-trusted-ips", converter=_tuple)
    """Addresses and networks allowed to use LMTP."""
    mail_max_size: int = _field("mail-max-size")
    """Largest message accepted by LMTP, Email/import, Email/set and Email/parse, in bytes."""
    mail_import_max_items: int = _field("mail-import-max-items")
    """Messages in one Email/import call."""
    mail_parse_max_items: int = _field("mail-parse-max-items")
    """Blobs in one Email/parse call."""
    mailbox_name_max_len: int = _field("mailbox-name-max-len")
    """Longest Mailbox name, in UTF-8 octets (at least 100)."""
    mailbox_max_total: int = _field("mailbox-max-total")
    """Mailboxes in one account."""
    mailbox_max_depth: int = _field("mailbox-max-depth")
    """Levels of the Mailbox hierarchy."""
    smtp_relay_host: Optional[str] = _field("smtp-relay-host")
    """SMTP relay for outgoing mail, or C{None}: submissions fail."""
    smtp_relay_port: int = _field("smtp-relay-port")
    """Port of the SMTP relay."""
    smtp_relay_tls: str = _field("smtp-relay-tls")
    """starttls, tls (implicit) or none."""
    smtp_relay_auth: str = _field("smtp-relay-auth")
    """none, plain or login."""
    smtp_relay_secret: Optional[str] = _field("smtp-relay-secret")
    """user:password, or a file path (starting with / or .) holding it."""

    def __attrs_post_init__(self) -> None:
        _check_pair("jmap", self.jmap_cert_path, self.jmap_key_path, "give both for HTTPS, or neither")
        _check_pair("lmtp", self.lmtp_cert_path, self.lmtp_key_path, "give both for STARTTLS, or neither")
        if self.lmtp_tls_only and self.lmtp_cert_path is None:
            raise ConfigError("lmtp-tls-only: needs lmtp-cert-path and lmtp-key-path")
        _check_pair("rpc", self.rpc_cert_path, self.rpc_key_path, "give both, or neither for a generated one")
        if self.encryption_key_accept and self.encryption_key is None:
            raise ConfigError("encryption-key-accept: needs encryption-key")
        if self.seed_nodes and self.encryption_key is None:
            raise ConfigError("seed-nodes: needs encryption-key (the same on every node of the cluster)")
        if self.read_replica and not self.seed_nodes:
            raise ConfigError("read-replica: needs seed-nodes and encryption-key (a replica of which cluster?)")
        if self.smtp_relay_auth != "none" and self.smtp_relay_secret is None:
            raise ConfigError(f"smtp-relay-auth: {self.smtp_relay_auth} needs smtp-relay-secret")

    @property
    def tls(self) -> bool:
        """
        Whether the JMAP listener speaks HTTPS (a certificate and key are given).
        """
        return self.jmap_cert_path is not None and self.jmap_key_path is not None
