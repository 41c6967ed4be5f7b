# -*- test-case-name: tests.service.test_config -*-
"""
Tests for L{stalwart.service.config}: the key table and L{ServerConfig}.
"""

import attrs
from twisted.trial.unittest import SynchronousTestCase

from stalwart.service.config import KEYS, KEYS_BY_NAME, ServerConfig, derive_jmap_url
from stalwart.service.errors import ConfigError


class KeyTableTests(SynchronousTestCase):
    """
    L{KEYS} and L{ServerConfig} agree.
    """

    def test_one_field_per_key(self) -> None:
        """
        Every key has a L{ServerConfig} field of the same name in snake_case,
        and every field has a key.
        """
        self.assertEqual(
            sorted(key.attribute for key in KEYS),
            sorted(field.name for field in attrs.fields(ServerConfig)),
        )

    def test_defaults_match(self) -> None:
        """
        The defaults of L{ServerConfig} are the defaults of the table (except
        the derived C{jmap_url}).
        """
        config = ServerConfig()
        for key in KEYS:
            if key.name != "jmap-url":
                self.assertEqual(getattr(config, key.attribute), key.default, key.name)

    def test_documented_defaults(self) -> None:
        """
        The defaults given by the brief are the table's.
        """
        expected = {
            "data-dir": "./stalwart-data", "jmap-bind-addr": "127.0.0.1",
            "jmap-port": 8080, "max-size-upload": 50000000,
            "max-size-request": 10000000, "max-concurrent-requests": 4,
            "max-calls-in-request": 16, "max-objects-in-get": 500,
            "max-objects-in-set": 500, "query-max-results": 5000,
            "changes-max-results": 5000,
            "event-source-throttle": 1000, "ws-heartbeat-interval": 30000,
            "ws-client-timeout": 90000, "push-attempts-max": 3, "push-retry-interval": 10000,
            "push-timeout": 10000, "push-expires-max": 604_800_000,
            "admin-secret": None, "log-level": "info",
            "encryption-key": None, "encryption-key-accept": (), "seed-nodes": (), "rpc-advertise-addr": None,
            "rpc-bind-addr": "127.0.0.1", "rpc-port": 7911, "rpc-cert-path": None, "rpc-key-path": None, "peer-ping-interval": 500,
            "read-replica": False,
            "redirect-status": 302, "rpc-timeout": 1000, "rpc-backoff-max": 2000,
            "raft-election-timeout": 1000, "raft-batch-max": 10_485_760, "raft-snapshot-entries": 10000,
            "jmap-cert-path": None, "jmap-key-path": None, "jmap-url": None,
            "lmtp-bind-addr": "127.0.0.1", "lmtp-port": 11200, "lmtp-cert-path": None,
            "lmtp-key-path": None, "lmtp-tls-only": False,
            "lmtp-trusted-ips": ("127.0.0.1", "::1"), "mail-max-size": 50_000_000,
            "mail-import-max-items": 100, "mail-parse-max-items": 100, "mailbox-name-max-len": 255,
            "mailbox-max-total": 1000, "mailbox-max-depth": 10,
            "smtp-relay-host": None, "smtp-relay-port": 587, "smtp-relay-tls": "starttls",
            "smtp-relay-auth": "none", "smtp-relay-secret": None,
        }
        self.assertEqual({key.name: key.default for key in KEYS}, expected)

    def test_defaults_parse(self) -> None:
        """
        Each non-empty default, written as text, parses back to itself.
        """
        for key in KEYS:
            if key.default not in (None, ()):
                text = key.describe_default()
                self.assertEqual(key.kind.parse(text), key.default, key.name)


class RelayConfigTests(SynchronousTestCase):
    """
    The smtp-relay-* keys (EmailSubmission and vacation replies).
    """

    def test_modes(self) -> None:
        """
        smtp-relay-tls and smtp-relay-auth take their listed values only.
        """
        self.assertEqual(KEYS_BY_NAME["smtp-relay-tls"].kind.parse("TLS"), "tls")
        self.assertEqual(KEYS_BY_NAME["smtp-relay-auth"].kind.parse("login"), "login")
        with self.assertRaises(ValueError):
            KEYS_BY_NAME["smtp-relay-tls"].kind.parse("ssl")
        with self.assertRaises(ValueError):
            KEYS_BY_NAME["smtp-relay-auth"].kind.parse("cram-md5")

    def test_auth_needs_secret(self) -> None:
        """
        AUTH without smtp-relay-secret is refused, naming the key.
        """
        with self.assertRaises(ConfigError) as caught:
            ServerConfig(smtp_relay_host="relay.example.com", smtp_relay_auth="plain")
        self.assertIn("smtp-relay-auth", str(caught.exception))
        config = ServerConfig(smtp_relay_host="relay.example.com", smtp_relay_auth="plain",
                              smtp_relay_secret="user:pass")
        self.assertEqual((config.smtp_relay_port, config.smtp_relay_tls), (587, "starttls"))


class ServerConfigTests(SynchronousTestCase):
    """
    L{ServerConfig} built directly, as embedders do.
    """

    def test_keywords_only(self) -> None:
        """
        Fields are given by keyword; the rest take their defaults.
        """
        config = ServerConfig(data_dir="/var/lib/x", jmap_port=0)
        self.assertEqual((config.data_dir, config.jmap_port), ("/var/lib/x", 0))
        self.assertEqual(config.max_calls_in_request, 16)
        self.assertRaises(TypeError, ServerConfig, "/var/lib/x")

    def test_derived_url(self) -> None:
        """
        Without C{jmap_url}, the URL is derived from the bind address and
        port, https when a certificate and key are given.
        """
        self.assertEqual(ServerConfig().jmap_url, "http://127.0.0.1:8080")
        config = ServerConfig(
            jmap_bind_addr="::1", jmap_port=8443, jmap_cert_path="c", jmap_key_path="k"
        )
        self.assertEqual(config.jmap_url, "https://[::1]:8443")
        self.assertTrue(config.tls)
        self.assertFalse(ServerConfig().tls)
        self.assertEqual(derive_jmap_url("10.0.0.1", 80, False), "http://10.0.0.1:80")

    def test_explicit_url(self) -> None:
        """
        An explicit C{jmap_url} wins and loses its trailing slash.
        """
        config = ServerConfig(jmap_url="https://mail.example.com/")
        self.assertEqual(config.jmap_url, "https://mail.example.com")

    def test_bad_values(self) -> None:
        """
        A bad value raises L{ConfigError} naming the key.
        """
        cases = [
            ({"jmap_port": 70000}, "jmap-port: 70000 is not a port number (0-65535)"),
            ({"jmap_port": "80"}, "jmap-port: '80' is not a port number (0-65535)"),
            ({"max_size_upload": 0}, "max-size-upload: 0 is not a size in bytes >= 1"),
            ({"read_replica": 1}, "read-replica: 1 is not a boolean"),
            ({"log_level": "verbose"}, "log-level: 'verbose' is not one of"),
            ({"jmap_url": "ftp://x"}, "jmap-url: 'ftp://x' is not an http"),
            ({"jmap_url": None}, "jmap-url: None is not"),
            ({"seed_nodes": "a;b"}, "seed-nodes: 'a;b' is not a list"),
            ({"data_dir": ""}, "data-dir: '' is not"),
            ({"jmap_bind_addr": "a b"}, "jmap-bind-addr: 'a b' is not a host"),
            ({"redirect_status": 301}, "redirect-status: 301 is not one of 302, 307, 308"),
            ({"rpc_timeout": 0}, "rpc-timeout: 0 is not a duration in milliseconds >= 1"),
            ({"rpc_backoff_max": 0}, "rpc-backoff-max: 0 is not a duration in milliseconds >= 1"),
            ({"raft_election_timeout": 199},
             "raft-election-timeout: 199 is not a duration in milliseconds >= 200"),
            ({"raft_batch_max": 0}, "raft-batch-max: 0 is not a size in bytes >= 1"),
        ]
        for kwargs, message in cases:
            error = self.assertRaises(ConfigError, ServerConfig, **kwargs)
            self.assertTrue(str(error).startswith(message), str(error))

    def test_redirect_status_text(self) -> None:
        """
        redirect-status parses 302, 307 and 308 only.
        """
        kind = KEYS_BY_NAME["redirect-status"].kind
        self.assertEqual(kind.parse("307"), 307)
        self.assertRaises(ValueError, kind.parse, "301")
        self.assertRaises(ValueError, kind.parse, "abc")
        self.assertEqual(ServerConfig(redirect_status=308).redirect_status, 308)

    def test_seed_nodes_list(self) -> None:
        """
        C{seed_nodes} accepts a list and stores a tuple; entries are host,
        host:port or [ipv6]:port.
        """
        config = ServerConfig(seed_nodes=["a.example", "10.0.0.2:7912", "[::1]:7911"], encryption_key="k")
        self.assertEqual(config.seed_nodes, ("a.example", "10.0.0.2:7912", "[::1]:7911"))
        self.assertRaises(ConfigError, ServerConfig, seed_nodes=["a:99999"])
        self.assertRaises(ConfigError, ServerConfig, seed_nodes=["[a]:1"])

    def test_cert_without_key(self) -> None:
        """
        A certificate without a key, or a key without a certificate, is an
        error naming the key given.
        """
        error = self.assertRaises(ConfigError, ServerConfig, jmap_cert_path="c")
        self.assertEqual(
            str(error),
            "jmap-cert-path: given without jmap-key-path (give both for HTTPS, or neither)",
        )
        error = self.assertRaises(ConfigError, ServerConfig, jmap_key_path="k")
        self.assertTrue(str(error).startswith("jmap-key-path: given without jmap-cert-path"))
        error = self.assertRaises(ConfigError, ServerConfig, rpc_cert_path="c")
        self.assertTrue(str(error).startswith("rpc-cert-path: given without rpc-key-path"))

    def test_cluster_keys_need_the_key(self) -> None:
        """seed-nodes or read-replica without encryption-key cannot make a cluster: a clear error, not a lone node."""
        error = self.assertRaises(ConfigError, ServerConfig, seed_nodes=("10.0.0.2",))
        self.assertEqual(str(error), "seed-nodes: needs encryption-key (the same on every node of the cluster)")
        error = self.assertRaises(ConfigError, ServerConfig, read_replica=True)
        self.assertTrue(str(error).startswith("read-replica: needs seed-nodes"))
        ServerConfig(seed_nodes=("10.0.0.2",), encryption_key="k")

    def test_frozen(self) -> None:
        """
        A L{ServerConfig} cannot be changed; L{attrs.evolve} makes a new one.
        """
        config = ServerConfig()
        self.assertRaises(attrs.exceptions.FrozenInstanceError, setattr, config, "jmap_port", 1)
        self.assertEqual(attrs.evolve(config, jmap_port=1).jmap_port, 1)

    def test_table_lookup(self) -> None:
        """
        L{KEYS_BY_NAME} finds keys by their kebab-case name.
        """
        self.assertEqual(KEYS_BY_NAME["rpc-port"].attribute, "rpc_port")
