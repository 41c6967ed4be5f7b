# -*- test-case-name: tests.service.test_options -*-
"""
Command-line and configuration-file options of C{twistd stalwart-jmap}.

Every key of L{stalwart.service.config.KEYS} works as C{--name=value} on the
command line and as C{name: value} in the file named by C{--config}. The
command line wins over the file and the file over the defaults. After
C{parseOptions}, C{options.config} is a frozen
L{stalwart.service.config.ServerConfig}.

Configuration file format (a small subset of YAML)::

    # a comment; blank lines are ignored
    jmap-port: 8080           # a comment after whitespace is ignored too
    seed-nodes: 192.168.0.102 ; 192.168.0.101
    admin-secret: "a value with # in it, quoted"

An empty value means the default. Any mistake (unknown key, bad value,
unreadable file) is reported as one line naming the key, and the file and
line for mistakes in the file.
"""

from __future__ import annotations

import difflib
import re
from typing import Iterable, Optional

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from twisted.python import usage

from stalwart.service.config import KEYS, KEYS_BY_NAME, ServerConfig
from stalwart.service.errors import ConfigError

__all__ = [
    "Options",
    "ServerOptions",
    "TwistdOptions",
    "build_config",
    "check_tls_files",
    "parse_config_text",
    "read_config_file",
]


def _suggestion(name: str, names: Iterable[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(name.replace("_", "-"), list(names), n=1, cutoff=0.6)
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""


def _value_text(rest: str) -> Optional[str]:
    """
    The value part of a C{key: value} line, without quotes or comment.

    @return: The value, or C{None} if an opening quote is not closed or is
        followed by something other than a comment.
    """
    rest = rest.strip()
    if rest[:1] in ("'", '"'):
        end = rest.find(rest[0], 1)
        after = rest[end + 1 :].strip() if end > 0 else None
        if after is None or (after and not after.startswith("#")):
            return None
        return rest[1:end]
    return re.split(r"\s#", rest, maxsplit=1)[0].strip()


def parse_config_text(text: str, source: str) -> dict[str, tuple[str, int]]:
    """
    Parse the text of a configuration file.

    @param text: The file's text.
    @param source: The file's name, for error messages.
    @return: Key name to (value text, line number). Values are stripped;
        an empty value means the default.
    @raise ConfigError: C{"<source> line <n>: ..."} for a line that is not
        C{key: value}, an unknown key, a key given twice or a bad quote.
    """
    values: dict[str, tuple[str, int]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped == "---":
            continue
        where = f"{source} line {number}"
        name, colon, rest = stripped.partition(":")
        name = name.strip()
        if not colon or not name or " " in name:
            raise ConfigError(f"{where}: expected 'key: value', got {stripped!r}")
        if name not in KEYS_BY_NAME:
            raise ConfigError(
                f"{where}: unknown key {name!r}{_suggestion(name, KEYS_BY_NAME)}"
            )
        if name in values:
            raise ConfigError(f"{where}: {name}: given twice (first on line {values[name][1]})")
        value = _value_text(rest)
        if value is None:
            raise ConfigError(f"{where}: {name}: unbalanced quotes in {rest.strip()!r}")
        values[name] = (value, number)
    return values


def read_config_file(path: str) -> dict[str, tuple[str, int]]:
    """
    Read and parse the configuration file at C{path}.

    @raise ConfigError: If the file cannot be read, is not UTF-8, or does not
        parse (see L{parse_config_text}).
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"config: cannot read {path!r}: {e.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    return parse_config_text(text, path)


def build_config(
    command_line: dict[str, Optional[str]],
    file_values: dict[str, tuple[str, int]],
    source: str = "",
) -> ServerConfig:
    """
    Merge command-line and file values over the defaults and parse them.

    @param command_line: Key name to text, C{None} for keys not given.
    @param file_values: Key name to (text, line), from L{parse_config_text}.
    @param source: The configuration file's name, for error messages.
    @raise ConfigError: Naming the key (and the file and line for a value
        from the file) when a value is bad.
    """
    values: dict[str, object] = {}
    for key in KEYS:
        text = command_line.get(key.name)
        where = ""
        if text is None and key.name in file_values:
            text, line = file_values[key.name]
            where = f"{source} line {line}: "
        if text is None or not text.strip():
            continue
        try:
            values[key.attribute] = key.kind.parse(text.strip())
        except ValueError as e:
            raise ConfigError(f"{where}{key.name}: {e}") from None
    if values.get("seed_nodes"):
        # Cluster nodes started side by side on one machine, as in the
        # clustering quick start, must not share the default data-dir (its
        # lock would stop the second) nor the default LMTP port: each
        # takes its own from its JMAP port.
        jmap_port = values.get("jmap_port", KEYS_BY_NAME["jmap-port"].default)
        offset = jmap_port - KEYS_BY_NAME["jmap-port"].default
        values.setdefault("data_dir", f"{KEYS_BY_NAME['data-dir'].default}-{jmap_port}")
        if "lmtp_port" not in values and 0 < KEYS_BY_NAME["lmtp-port"].default + offset < 65536:
            values["lmtp_port"] = KEYS_BY_NAME["lmtp-port"].default + offset
    return ServerConfig(**values)  # type: ignore[arg-type]


def check_tls_files(cert_path: str, key_path: str) -> None:
    """
    Check that the HTTPS certificate and key are readable, load as PEM and
    belong together.

    @raise ConfigError: Naming C{jmap-cert-path} or C{jmap-key-path}.
    """
    cert_data = _read("jmap-cert-path", cert_path)
    key_data = _read("jmap-key-path", key_path)
    try:
        certificate = x509.load_pem_x509_certificates(cert_data)[0]
    except ValueError:
        raise ConfigError(
            f"jmap-cert-path: {cert_path!r} holds no PEM certificate"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:
        raise ConfigError(
            f"jmap-key-path: {key_path!r} is encrypted; give an unencrypted key"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"jmap-key-path: {key_path!r} holds no PEM private key") from None
    if _public(certificate.public_key()) != _public(key.public_key()):
        raise ConfigError(
            f"jmap-key-path: {key_path!r} does not match the certificate in {cert_path!r}"
        )


def _public(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _read(name: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"{name}: cannot read {path!r}: {e.strerror}") from None


_UNRECOGNIZED = re.compile(r"^option --(\S+) not recognized$")


class ServerOptions(usage.Options):
    """
    Options of C{twistd stalwart-jmap}; after L{parseOptions}, C{self.config}
    is the node's L{ServerConfig}.

    Parameters are declared with a default of C{None} so that L{postOptions}
    can tell what the command line set; the real default is written in each
    help text.
    """

    synopsis = "[options]"
    longdesc = (
        "Run a stalwart-jmap node: a JMAP mail server (RFC 8620, RFC 8621). Every "
        "option can also be written as 'name: value' in the file given by --config; "
        "the command line wins over the file, the file over the defaults."
    )
    optParameters = [
        ["config", None, None, "Configuration file of 'name: value' lines "
         "(see conf/stalwart-jmap.yml). [default: none]"],
    ] + [
        [key.name, None, None, f"{key.help} [default: {key.describe_default()}]"]
        for key in KEYS
    ]

    def __init__(self) -> None:
        super().__init__()
        self.config = ServerConfig()

    def parseOptions(self, options: Optional[list[str]] = None) -> None:
        """
        Parse the command line (and the file it names) into C{self.config}.

        @raise usage.UsageError: With one line naming the key at fault.
        """
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            match = _UNRECOGNIZED.match(str(e))
            if match is None:
                raise
            name = match.group(1)
            names = ["config"] + list(KEYS_BY_NAME)
            raise usage.UsageError(
                f"unknown option '--{name}'{_suggestion(name, names, '--')}"
            ) from None

    def postOptions(self) -> None:
        """
        Read the configuration file, merge it with the command line and
        build C{self.config}.
        """
        try:
            path = self["config"]
            file_values = read_config_file(path) if path else {}
            config = build_config(
                {key.name: self[key.name] for key in KEYS}, file_values, path or ""
            )
            if config.tls:
                assert config.jmap_cert_path is not None and config.jmap_key_path is not None
                check_tls_files(config.jmap_cert_path, config.jmap_key_path)
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
        self.config = config
        for key in KEYS:
            self[key.name] = getattr(config, key.attribute)


class TwistdOptions(ServerOptions):
    """
    L{ServerOptions} for twistd, which answers a L{usage.UsageError} by
    printing the whole usage text and exiting with status 0: this class turns
    configuration errors into one line on stderr and exit status 1 instead.
    C{--help} still prints the help and exits with status 0.
    """

    def parseOptions(self, options: Optional[list[str]] = None) -> None:
        """
        Parse like L{ServerOptions.parseOptions}.

        @raise SystemExit: C{"stalwart-jmap: error: <message>"} for a bad
            option or value.
        """
        try:
            super().parseOptions(options)
        except (usage.UsageError, ConfigError) as e:
            raise SystemExit(f"stalwart-jmap: error: {e}") from None


Options = ServerOptions
