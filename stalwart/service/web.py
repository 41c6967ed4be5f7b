# -*- test-case-name: tests.service.test_maker -*-
"""
The "jmap" service: the HTTP(S) listener for the JMAP and admin resources.

Request bodies are bounded before they are read: a declared or streamed
length over the larger of max-size-upload and max-size-request closes the
connection with 413, so a hostile client cannot fill the disk or memory.
"""

from __future__ import annotations

from twisted.web import server
from twisted.web.resource import Resource

from stalwart.service.listener import ListeningService, tls_options

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


class JmapWebService(ListeningService):
    port_key = "jmap-port"

    def __init__(self, config, site: server.Site, reactor) -> None:
        self.config = config
        self.site = site

        def listen():
            if config.tls:
                options = tls_options(config.jmap_cert_path, config.jmap_key_path, "jmap-cert-path/jmap-key-path")
                return reactor.listenSSL(config.jmap_port, site, options, interface=config.jmap_bind_addr)
            return reactor.listenTCP(config.jmap_port, site, interface=config.jmap_bind_addr)

        super().__init__(listen, f"{config.jmap_bind_addr}:{config.jmap_port}")
