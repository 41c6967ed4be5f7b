# -*- test-case-name: tests.service.test_options -*-
"""
Tests for L{stalwart.service.options}: the command line, the configuration
file and how their errors surface.
"""

import datetime
import io
import os
import re
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from stalwart.service.config import KEYS, ServerConfig
from stalwart.service.errors import ConfigError
from stalwart.service.options import (
    Options,
    ServerOptions,
    TwistdOptions,
    build_config,
    parse_config_text,
)

CONF = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "conf",
    "stalwart-jmap.yml",
)


def _pem_pair() -> tuple[bytes, bytes]:
    """
    A self-signed certificate and its unencrypted private key, in PEM.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


class OptionsTestCase(SynchronousTestCase):
    """
    Helpers to write files and parse options.
    """

    def write(self, data: bytes | str) -> str:
        """
        Write C{data} to a new temporary file and return its path.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        return path

    def parse(self, *argv: str) -> ServerOptions:
        """
        Parse C{argv} with a new L{ServerOptions}.
        """
        options = ServerOptions()
        options.parseOptions(list(argv))
        return options

    def error(self, *argv: str) -> str:
        """
        The message of the L{usage.UsageError} parsing C{argv} raises; it
        must be one line.
        """
        message = str(self.assertRaises(usage.UsageError, self.parse, *argv))
        self.assertNotIn("\n", message)
        return message


class DefaultsTests(OptionsTestCase):
    """
    With no options, every key has its default.
    """

    def test_no_options(self) -> None:
        """
        An empty command line gives the default L{ServerConfig}.
        """
        options = self.parse()
        self.assertEqual(options.config, ServerConfig())
        self.assertEqual(options.config.jmap_url, "http://127.0.0.1:8080")
        self.assertEqual(options["jmap-port"], 8080)

    def test_options_alias(self) -> None:
        """
        C{Options} is L{ServerOptions}, the name the service maker re-exports.
        """
        self.assertIs(Options, ServerOptions)

    def test_config_before_parsing(self) -> None:
        """
        Before parsing, C{config} holds the defaults.
        """
        self.assertEqual(ServerOptions().config, ServerConfig())

    def test_help_lists_every_key(self) -> None:
        """
        The usage text lists every key as C{--name=} with its default.
        """
        text = str(ServerOptions())
        for key in KEYS:
            self.assertIn(f"--{key.name}=", text)
        flat = " ".join(text.split())
        self.assertIn("[default: 8080]", flat)
        self.assertIn("[default: ./stalwart-data]", flat)
        self.assertIn("[default: none: admin API disabled]", flat)
        self.assertEqual(len(re.findall(r"\[default:", flat)), len(KEYS) + 1)


class CommandLineTests(OptionsTestCase):
    """
    Keys given as C{--name=value}.
    """

    def test_every_kind(self) -> None:
        """
        Integers, booleans, lists, URLs and text are parsed into the
        L{ServerConfig} fields.
        """
        config = self.parse(
            "--data-dir=/srv/mail",
            "--jmap-port=8081",
            "--jmap-url=https://localhost:8081/",
            "--max-size-upload=1000",
            "--read-replica=yes",
            "--seed-nodes=192.168.0.102 ; 192.168.0.101:7912",
            "--log-level=DEBUG",
            "--admin-secret=s3cret",
            "--encryption-key=SECURE",
            "--rpc-advertise-addr=192.168.0.103",
            "--rpc-port=7912",
        ).config
        self.assertEqual(config.data_dir, "/srv/mail")
        self.assertEqual(config.jmap_port, 8081)
        self.assertEqual(config.jmap_url, "https://localhost:8081")
        self.assertEqual(config.max_size_upload, 1000)
        self.assertIs(config.read_replica, True)
        self.assertEqual(config.seed_nodes, ("192.168.0.102", "192.168.0.101:7912"))
        self.assertEqual(config.log_level, "debug")
        self.assertEqual(config.admin_secret, "s3cret")
        self.assertEqual(config.encryption_key, "SECURE")
        self.assertEqual(config.rpc_advertise_addr, "192.168.0.103")
        self.assertEqual(config.rpc_port, 7912)

    def test_derived_url_follows_port(self) -> None:
        """
        Without C{--jmap-url}, the URL follows C{--jmap-bind-addr} and
        C{--jmap-port}.
        """
        config = self.parse("--jmap-bind-addr=0.0.0.0", "--jmap-port=9000").config
        self.assertEqual(config.jmap_url, "http://0.0.0.0:9000")

    def test_booleans(self) -> None:
        """
        true/false/yes/no/1/0 are booleans, in any case.
        """
        for text, value in [("true", True), ("No", False), ("1", True), ("0", False)]:
            self.assertIs(self.parse("--encryption-key=k", "--seed-nodes=10.0.0.2", f"--read-replica={text}").config.read_replica, value)

    def test_bad_values(self) -> None:
        """
        Each kind of bad value is one line naming the key and the value.
        """
        cases = [
            ("--jmap-port=abc", "jmap-port: 'abc' is not a port number (0-65535)"),
            ("--jmap-port=65536", "jmap-port: '65536' is not a port number (0-65535)"),
            ("--rpc-port=-1", "rpc-port: '-1' is not a port number (0-65535)"),
            ("--max-size-upload=0", "max-size-upload: '0' is not a size in bytes >= 1"),
            ("--max-calls-in-request=1.5",
             "max-calls-in-request: '1.5' is not a whole number >= 1"),
            ("--read-replica=maybe",
             "read-replica: 'maybe' is not a boolean (true, false, yes, no, 1, 0)"),
            ("--log-level=verbose",
             "log-level: 'verbose' is not one of debug, info, warn, error, critical"),
            ("--jmap-url=ftp://example.com",
             "jmap-url: 'ftp://example.com' is not an http:// or https:// URL"),
            ("--jmap-url=http://", "jmap-url: 'http://' is not an http"),
            ("--jmap-url=http://x:99999", "jmap-url: 'http://x:99999' is not an http"),
            ("--seed-nodes=a:1;b:x", "seed-nodes: 'a:1;b:x' is not a list"),
            ("--jmap-bind-addr=not an address", "jmap-bind-addr: 'not an address' is not"),
        ]
        for argument, message in cases:
            self.assertTrue(self.error(argument).startswith(message), (argument, message))

    def test_unknown_option(self) -> None:
        """
        An unknown option is named, with the closest key when there is one.
        """
        self.assertEqual(
            self.error("--jmap-prot=1"),
            "unknown option '--jmap-prot' (did you mean '--jmap-port'?)",
        )
        self.assertEqual(self.error("--zzz=1"), "unknown option '--zzz'")

    def test_empty_means_default(self) -> None:
        """
        An empty value gives the default.
        """
        self.assertEqual(self.parse("--jmap-port=").config.jmap_port, 8080)

    def test_cert_without_key(self) -> None:
        """
        A certificate without a key is an error naming both keys.
        """
        self.assertEqual(
            self.error("--jmap-cert-path=/x.pem"),
            "jmap-cert-path: given without jmap-key-path (give both for HTTPS, or neither)",
        )


class TLSFileTests(OptionsTestCase):
    """
    C{jmap-cert-path} and C{jmap-key-path} are checked when parsed.
    """

    def test_valid_pair(self) -> None:
        """
        A readable certificate and its key give an HTTPS configuration.
        """
        cert, key = _pem_pair()
        config = self.parse(
            f"--jmap-cert-path={self.write(cert)}", f"--jmap-key-path={self.write(key)}"
        ).config
        self.assertTrue(config.tls)
        self.assertEqual(config.jmap_url, "https://127.0.0.1:8080")

    def test_unreadable_cert(self) -> None:
        """
        A certificate file that cannot be read is named with the reason.
        """
        _, key = _pem_pair()
        missing = self.mktemp()
        self.assertEqual(
            self.error(f"--jmap-cert-path={missing}", f"--jmap-key-path={self.write(key)}"),
            f"jmap-cert-path: cannot read {missing!r}: No such file or directory",
        )

    def test_not_pem(self) -> None:
        """
        Files that are not PEM are named.
        """
        cert, key = _pem_pair()
        junk = self.write(b"not a certificate")
        message = self.error(f"--jmap-cert-path={junk}", f"--jmap-key-path={self.write(key)}")
        self.assertEqual(message, f"jmap-cert-path: {junk!r} holds no PEM certificate")
        message = self.error(f"--jmap-cert-path={self.write(cert)}", f"--jmap-key-path={junk}")
        self.assertEqual(message, f"jmap-key-path: {junk!r} holds no PEM private key")

    def test_mismatched_key(self) -> None:
        """
        A key that does not belong to the certificate is refused.
        """
        cert, _ = _pem_pair()
        _, other = _pem_pair()
        message = self.error(
            f"--jmap-cert-path={self.write(cert)}", f"--jmap-key-path={self.write(other)}"
        )
        self.assertIn("does not match the certificate", message)

    def test_encrypted_key(self) -> None:
        """
        An encrypted key is refused: the server cannot ask for a passphrase.
        """
        cert, key_pem = _pem_pair()
        key = serialization.load_pem_private_key(key_pem, None)
        encrypted = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pass"),
        )
        message = self.error(
            f"--jmap-cert-path={self.write(cert)}", f"--jmap-key-path={self.write(encrypted)}"
        )
        self.assertIn("is encrypted", message)


class ClusterDataDirTests(OptionsTestCase):
    """The quick start's nodes, started from one directory with no data-dir, each get their own."""

    def test_one_data_dir_per_jmap_port(self) -> None:
        base = ["--encryption-key=k", "--seed-nodes=127.0.0.1:7912"]
        self.assertEqual(self.parse(*base, "--jmap-port=8081").config.data_dir, "./stalwart-data-8081")
        self.assertEqual(self.parse(*base, "--jmap-port=8082").config.data_dir, "./stalwart-data-8082")
        self.assertEqual(self.parse(*base, "--jmap-port=8081", "--data-dir=/srv/a").config.data_dir, "/srv/a")
        self.assertEqual(self.parse("--jmap-port=8081").config.data_dir, "./stalwart-data")

    def test_one_lmtp_port_per_jmap_port(self) -> None:
        """The quick start's nodes do not fight over LMTP port 11200: 8081 -> 11201 unless lmtp-port is given."""
        base = ["--encryption-key=k", "--seed-nodes=127.0.0.1:7912"]
        self.assertEqual(self.parse(*base, "--jmap-port=8081").config.lmtp_port, 11201)
        self.assertEqual(self.parse(*base, "--jmap-port=8080").config.lmtp_port, 11200)
        self.assertEqual(self.parse(*base, "--jmap-port=8083", "--lmtp-port=0").config.lmtp_port, 0)
        self.assertEqual(self.parse("--jmap-port=8081").config.lmtp_port, 11200)


class ConfigFileTests(OptionsTestCase):
    """
    Keys given in the file named by C{--config}.
    """

    def test_file_values(self) -> None:
        """
        Values in the file are used; comments and blank lines are ignored;
        lists are separated by C{;}.
        """
        path = self.write(
            "# a comment\n\n"
            "jmap-port: 9000   # inline comment\n"
            "seed-nodes: 192.168.0.102 ; 192.168.0.101\n"
            "encryption-key: SECURE_ENCRYPTION_KEY\n"
            "admin-secret: 'with # inside'\n"
            "read-replica: true\n"
        )
        config = self.parse(f"--config={path}").config
        self.assertEqual(config.jmap_port, 9000)
        self.assertEqual(config.seed_nodes, ("192.168.0.102", "192.168.0.101"))
        self.assertEqual(config.admin_secret, "with # inside")
        self.assertIs(config.read_replica, True)

    def test_precedence(self) -> None:
        """
        The command line wins over the file, the file over the defaults.
        """
        path = self.write("jmap-port: 9000\nrpc-port: 7000\n")
        config = self.parse(f"--config={path}", "--jmap-port=9100").config
        self.assertEqual((config.jmap_port, config.rpc_port, config.max_calls_in_request),
                         (9100, 7000, 16))
        self.assertEqual(config.jmap_url, "http://127.0.0.1:9100")

    def test_command_line_empty_resets(self) -> None:
        """
        An empty value on the command line resets a file value to the default.
        """
        path = self.write("jmap-port: 9000\n")
        self.assertEqual(self.parse(f"--config={path}", "--jmap-port=").config.jmap_port, 8080)

    def test_bad_value_names_file_and_line(self) -> None:
        """
        A bad value in the file is reported with the file, line and key.
        """
        path = self.write("# x\n\njmap-port: abc\n")
        self.assertEqual(
            self.error(f"--config={path}"),
            f"{path} line 3: jmap-port: 'abc' is not a port number (0-65535)",
        )

    def test_unknown_key(self) -> None:
        """
        An unknown key in the file is reported with the file and line.
        """
        path = self.write("data-dir: x\n\n\n\n\n\njmap-prot: 1\n")
        self.assertEqual(
            self.error(f"--config={path}"),
            f"{path} line 7: unknown key 'jmap-prot' (did you mean 'jmap-port'?)",
        )

    def test_malformed_lines(self) -> None:
        """
        Lines that are not C{key: value}, keys given twice and unbalanced
        quotes are each one line naming the file and line.
        """
        cases = [
            ("jmap-port 8080\n", "line 1: expected 'key: value', got 'jmap-port 8080'"),
            ("jmap-port: 1\njmap-port: 2\n", "line 2: jmap-port: given twice (first on line 1)"),
            ("admin-secret: 'abc\n", "line 1: admin-secret: unbalanced quotes"),
            ("admin-secret: 'abc' x\n", "line 1: admin-secret: unbalanced quotes"),
        ]
        for text, message in cases:
            path = self.write(text)
            self.assertEqual(self.error(f"--config={path}")[: len(path) + 1 + len(message)],
                             f"{path} {message}")

    def test_unreadable_file(self) -> None:
        """
        A configuration file that cannot be read is named with the reason.
        """
        missing = self.mktemp()
        self.assertEqual(
            self.error(f"--config={missing}"),
            f"config: cannot read {missing!r}: No such file or directory",
        )

    def test_not_utf8(self) -> None:
        """
        A file that is not UTF-8 is refused with one line.
        """
        path = self.write(b"admin-secret: \xff\n")
        self.assertEqual(self.error(f"--config={path}"), f"{path}: not UTF-8 text (byte 14)")

    def test_example_file_parses(self) -> None:
        """
        conf/stalwart-jmap.yml parses and gives the defaults.
        """
        self.assertEqual(self.parse(f"--config={CONF}").config, ServerConfig())

    def test_example_file_documents_every_key(self) -> None:
        """
        Every key appears in conf/stalwart-jmap.yml as a commented-out
        C{#key: value} line, and uncommenting them all gives a valid
        configuration whose defaults, where shown, are the table's.
        """
        with open(CONF, encoding="utf-8") as f:
            text = f.read()
        uncommented = re.sub(r"(?m)^#([a-z-]+:)", r"\1", text)
        values = parse_config_text(uncommented, CONF)
        self.assertEqual(sorted(values), sorted(key.name for key in KEYS))
        config = build_config({}, values, CONF)
        for key in KEYS:
            if key.default not in (None, ()):
                self.assertEqual(getattr(config, key.attribute), key.default, key.name)

    def test_parse_config_text_unknown(self) -> None:
        """
        L{parse_config_text} raises L{ConfigError} for an unknown key.
        """
        error = self.assertRaises(ConfigError, parse_config_text, "nope: 1\n", "f.yml")
        self.assertEqual(str(error), "f.yml line 1: unknown key 'nope'")


class TwistdOptionsTests(OptionsTestCase):
    """
    L{TwistdOptions} turns usage errors into one line and exit status 1.
    """

    def test_error_exits(self) -> None:
        """
        A bad value raises L{SystemExit} with C{stalwart-jmap: error: ...},
        which Python prints on stderr with exit status 1.
        """
        options = TwistdOptions()
        error = self.assertRaises(SystemExit, options.parseOptions, ["--jmap-port=abc"])
        self.assertEqual(
            error.code, "stalwart-jmap: error: jmap-port: 'abc' is not a port number (0-65535)"
        )

    def test_unknown_option_exits(self) -> None:
        """
        An unknown option exits the same way.
        """
        error = self.assertRaises(SystemExit, TwistdOptions().parseOptions, ["--nope=1"])
        self.assertEqual(error.code, "stalwart-jmap: error: unknown option '--nope'")

    def test_help_exits_zero(self) -> None:
        """
        C{--help} prints the usage text and exits with status 0.
        """
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        error = self.assertRaises(SystemExit, TwistdOptions().parseOptions, ["--help"])
        self.assertIn(error.code, (0, None))
        self.assertIn("--jmap-port=", out.getvalue())

    def test_valid(self) -> None:
        """
        Valid options parse as with L{ServerOptions}.
        """
        options = TwistdOptions()
        options.parseOptions(["--jmap-port=1"])
        self.assertEqual(options.config.jmap_port, 1)
