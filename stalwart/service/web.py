# -*- test-case-name: tests.service.test_maker -*-
"""
The "jmap" service: the HTTP(S) listener for the JMAP and admin resources.

Request bodies are bounded before they are read: a declared or streamed
length over the larger of max-size-upload and max-size-request closes the
connection with 413, so a hostile client cannot fill the disk or memory.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet import ssl
from twisted.internet.error import CannotListenError
from twisted.web import server
from twisted.web.resource import Resource

from stalwart.service.errors import ConfigError

__all__ = ["JmapWebService", "make_site"]


class _BoundedRequest(server.Request):
    _refused = False
    _body_seen = 0

    def gotLength(self, length):
        super().gotLength(length)
        if length is not None and length > self.channel.site.body_bytes_max:
            self._refuse()

    def handleContentChunk(self, data):
        if self._refused:
            return
        self._body_seen += len(data)
        if self._body_seen > self.channel.site.body_bytes_max:
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        if not self._refused:
            super().requestReceived(command, path, version)

    def _refuse(self):
        self._refused = True
        body = b'{"type":"urn:ietf:params:jmap:error:limit","status":413,"detail":"request body too large"}'
        transport = self.channel.transport
        transport.write(
            b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: application/problem+json\r\n"
            b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        transport.loseConnection()


class _Site(server.Site):
    requestFactory = _BoundedRequest

    def __init__(self, resource, body_bytes_max: int, access_log: bool) -> None:
        super().__init__(resource)
        self.body_bytes_max = body_bytes_max
        self._access_log = access_log

    def log(self, request):
        if self._access_log:
            super().log(request)


def make_site(root: Resource, config) -> server.Site:
    return _Site(root, max(config.max_size_upload, config.max_size_request), config.log_level == "debug")


def _tls_options(config) -> ssl.CertificateOptions:
    from OpenSSL import crypto

    with open(config.jmap_cert_path, "rb") as f:
        pem = f.read()
    with open(config.jmap_key_path, "rb") as f:
        key = crypto.load_privatekey(crypto.FILETYPE_PEM, f.read())
    marker = b"-----BEGIN CERTIFICATE-----"
    certs = [crypto.load_certificate(crypto.FILETYPE_PEM, marker + block) for block in pem.split(marker)[1:]]
    return ssl.CertificateOptions(
        privateKey=key, certificate=certs[0], extraCertChain=certs[1:], raiseMinimumTo=ssl.TLSVersion.TLSv1_2
    )


class JmapWebService(Service):
    def __init__(self, config, site: server.Site, reactor) -> None:
        self.config = config
        self.site = site
        self._reactor = reactor
        self.port = None

    def privilegedStartService(self) -> None:
        self._listen()
        super().privilegedStartService()

    def startService(self) -> None:
        self._listen()
        super().startService()

    def _listen(self) -> None:
        if self.port is not None:
            return
        c = self.config
        try:
            if c.tls:
                self.port = self._reactor.listenSSL(c.jmap_port, self.site, _tls_options(c), interface=c.jmap_bind_addr)
            else:
                self.port = self._reactor.listenTCP(c.jmap_port, self.site, interface=c.jmap_bind_addr)
        except CannotListenError as e:
            raise ConfigError(
                f"jmap-port: cannot listen on {c.jmap_bind_addr}:{c.jmap_port}: {e.socketError}"
            ) from None

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None
