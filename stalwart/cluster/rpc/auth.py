# -*- test-case-name: tests.cluster.rpc.test_auth -*-
"""
Admission of cluster RPC peers: each side proves it holds the cluster key.

The key is derived from the configured C{encryption-key} with HKDF-SHA256
(RFC 5869) and a label of its own, so it is never the key gossip seals
packets with.  After TLS is up:

  1. client -> server  C{Hello(version, client_nonce)}
  2. server -> client  answer C{(version, server_nonce)}
  3. client -> server  C{Prove(client_proof)}
  4. server -> client  answer C{(server_proof)}, only if client_proof is right

with::

    proof(role) = HMAC-SHA256(key, "stalwart-jmap rpc proof v1" 0x00 role 0x00
                              || u16 len(binding) || binding
                              || client_nonce || server_nonce)

where C{role} is C{client} or C{server} (a proof is never valid reflected
back to its sender), and C{binding} is the TLS channel binding
(L{stalwart.cluster.rpc.tls}: exported keying material, RFC 5705 / RFC 9266,
plus the server certificate's digest).  A man in the middle runs two TLS
channels with two different bindings, so a proof it relays from one to the
other does not verify.  Both nonces are fresh, so a recorded proof does not
replay.  Unlike Stalwart (which proves only the client, with a non-constant
time comparison), both sides prove, and the comparison is constant-time.

This module is pure: randomness comes from an injected C{urandom}.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Callable, Sequence, Tuple, Union

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "PROTOCOL_VERSION",
    "NONCE_BYTES",
    "KEY_BYTES",
    "CLIENT",
    "SERVER",
    "Refused",
    "derive_key",
    "proof",
    "ServerAdmission",
    "ClientAdmission",
]

#: Version of the admission exchange and of the commands after it.
PROTOCOL_VERSION = 1
NONCE_BYTES = 32
KEY_BYTES = 32
CLIENT = b"client"
SERVER = b"server"

_SALT = b"stalwart-jmap cluster key v1"
_INFO = b"stalwart-jmap rpc admission v1"
_PROOF_LABEL = b"stalwart-jmap rpc proof v1"


class Refused(Exception):
    """
    The peer failed admission.

    @ivar reason: a short word for logs and counters: C{version}, C{nonce},
        C{proof}, C{order}.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def derive_key(encryption_key: Union[str, bytes]) -> bytes:
    """The RPC admission key, derived from the cluster's C{encryption-key}."""
    if isinstance(encryption_key, str):
        encryption_key = encryption_key.encode("utf-8")
    assert encryption_key, "empty encryption-key"
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=_SALT, info=_INFO).derive(encryption_key)


def proof(key: bytes, role: bytes, binding: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    """The proof C{role} sends for this channel and these nonces."""
    assert role in (CLIENT, SERVER), role
    message = b"".join((
        _PROOF_LABEL, b"\x00", role, b"\x00",
        struct.pack(">H", len(binding)), binding, client_nonce, server_nonce,
    ))
    return hmac.new(key, message, hashlib.sha256).digest()


def _nonce(urandom: Callable[[int], bytes]) -> bytes:
    nonce = urandom(NONCE_BYTES)
    assert len(nonce) == NONCE_BYTES
    return nonce


class ServerAdmission:
    """
    The accepting side's state: C{hello}, then C{proof}, then C{admitted}.
    Any step out of order, or any failure, moves it to C{refused} for good.

    Key rotation: a client proving any of C{key} and C{also} is admitted,
    and the server proves itself with the key the client used.  Rolling a
    new key out in three passes (accept it; send with it; drop the old one)
    keeps every pair of nodes able to talk at every step.
    """

    def __init__(self, key: bytes, urandom: Callable[[int], bytes], also: Sequence[bytes] = ()) -> None:
        self._key = key
        self._keys = (key, *also)
        self._urandom = urandom
        self.state = "hello"
        self._client_nonce = b""
        self._server_nonce = b""

    @property
    def admitted(self) -> bool:
        return self.state == "admitted"

    def expects(self, command: str) -> bool:
        """Whether the AMP command C{command} may arrive now."""
        if self.state == "hello":
            return command == "Hello"
        if self.state == "proof":
            return command == "Prove"
        return self.state == "admitted" and command not in ("Hello", "Prove")

    def _refuse(self, reason: str) -> Refused:
        self.state = "refused"
        return Refused(reason)

    def hello(self, version: int, client_nonce: bytes) -> Tuple[int, bytes]:
        """Step 2: the version and the server nonce, or L{Refused}."""
        if self.state != "hello":
            raise self._refuse("order")
        if version != PROTOCOL_VERSION:
            raise self._refuse("version")
        if len(client_nonce) != NONCE_BYTES:
            raise self._refuse("nonce")
        self._client_nonce = client_nonce
        self._server_nonce = _nonce(self._urandom)
        self.state = "proof"
        return PROTOCOL_VERSION, self._server_nonce

    def prove(self, binding: bytes, client_proof: bytes) -> bytes:
        """Step 4: check the client's proof and return the server's, or L{Refused}."""
        if self.state != "proof":
            raise self._refuse("order")
        # Every key is tried, so the time taken does not tell which matched.
        matches = [hmac.compare_digest(proof(key, CLIENT, binding, self._client_nonce, self._server_nonce),
                                       client_proof) for key in self._keys]
        if not any(matches):
            raise self._refuse("proof")
        self.state = "admitted"
        key = self._keys[matches.index(True)]
        return proof(key, SERVER, binding, self._client_nonce, self._server_nonce)


class ClientAdmission:
    """The connecting side's state: C{hello}, C{prove}, C{check}, admitted."""

    def __init__(self, key: bytes, urandom: Callable[[int], bytes]) -> None:
        self._key = key
        self._urandom = urandom
        self.state = "start"
        self._client_nonce = b""
        self._server_nonce = b""
        self._binding = b""

    @property
    def admitted(self) -> bool:
        return self.state == "admitted"

    def _refuse(self, reason: str) -> Refused:
        self.state = "refused"
        return Refused(reason)

    def hello(self) -> Tuple[int, bytes]:
        """Step 1: the version and client nonce to send."""
        if self.state != "start":
            raise self._refuse("order")
        self._client_nonce = _nonce(self._urandom)
        self.state = "hello"
        return PROTOCOL_VERSION, self._client_nonce

    def prove(self, version: int, server_nonce: bytes, binding: bytes) -> bytes:
        """Step 3: given the server's answer and the channel binding, the client's proof."""
        if self.state != "hello":
            raise self._refuse("order")
        if version != PROTOCOL_VERSION:
            raise self._refuse("version")
        if len(server_nonce) != NONCE_BYTES or server_nonce == self._client_nonce:
            raise self._refuse("nonce")
        self._server_nonce = server_nonce
        self._binding = binding
        self.state = "proof"
        return proof(self._key, CLIENT, binding, self._client_nonce, server_nonce)

    def check(self, server_proof: bytes) -> None:
        """Last step: admit the server if its proof is right, else L{Refused}."""
        if self.state != "proof":
            raise self._refuse("order")
        expected = proof(self._key, SERVER, self._binding, self._client_nonce, self._server_nonce)
        if not hmac.compare_digest(expected, server_proof):
            raise self._refuse("proof")
        self.state = "admitted"
