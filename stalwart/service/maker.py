# -*- test-case-name: tests.service.test_maker -*-
"""
Build the stalwart-jmap service tree: the entry point twistd's plugin names.

C{makeService} returns a L{MultiService} whose named children another
Twisted application can also use on their own:

  - C{"store"}: state.db, blobs and their threads (L{StoreService});
  - C{"raft"}: the replicated log and its driver (L{RaftService});
  - C{"push"}: the change feed, EventSource, WebSocket and PushSubscription
    delivery (L{stalwart.push.service.PushService});
  - C{"jmap"}: the HTTP(S) listener (L{JmapWebService});
  - C{"lmtp"}: the LMTP listener (L{LmtpService}), unless lmtp-port is 0;
  - C{"outbox"}: sends submissions and vacation replies from the leader
    (L{stalwart.mail.outbox.OutboxService}), with the mail extension.

They start in that order and stop in reverse: the listener closes first,
then the log finishes its current write and the state machine its queue,
then the database closes.
"""

from __future__ import annotations

import os
import random
import sys
from typing import Callable, Iterable, Optional

from twisted.application.service import MultiService
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from stalwart import logs
from stalwart.admin.api import AdminApi
from stalwart.auth.authenticate import Authenticator
from stalwart.cluster.raft.segments.files import CorruptLogError
from stalwart.jmap.dispatch import Dispatcher
from stalwart.jmap.methods.blob import UPLOAD_COMMAND, BlobCopy, apply_blob_copy, apply_upload
from stalwart.jmap.methods.core import Echo
from stalwart.jmap.methods.standard import StandardMethods
from stalwart.jmap.objecttype import ObjectType
from stalwart.jmap.resource import JmapRoot
from stalwart.jmap.writes import WriteHandler
from stalwart.jmap.context import WRITE_COMMAND
from stalwart.lmtp.service import LmtpService
from stalwart.mail.delivery import DELIVERY_HANDLERS, DELIVERY_SCHEMA
from stalwart.mail.schema import MAIL_SCHEMA
from stalwart.push.service import PushService, push_extension
from stalwart.service.config import ServerConfig
from stalwart.service.errors import ConfigError
from stalwart.service.extension import Extension
from stalwart.service.cluster import LEAVE_COMMAND, ClusterService, apply_leave
from stalwart.service.node import Node
from stalwart.service.options import TwistdOptions
from stalwart.service.raft import RaftService, raft_config
from stalwart.service.store import StoreService, synchronous_worker
from stalwart.service.web import JmapWebService, make_site
from stalwart.store import accounts
from stalwart.store.commands import command_kind

#: Kinds of commands that change who may log in, and how.
ACCOUNT_COMMANDS = ("account.", "token.")

__all__ = ["Options", "makeService", "build_service", "StalwartService"]

Options = TwistdOptions

_STARTUP_ERRORS = (ConfigError, CorruptLogError)


class StartupFailed(Exception):
    """A start-up problem the operator must fix, reported by a daemonized twistd."""


def _daemonized() -> bool:
    """
    Whether twistd daemonized this process (no C{-n}): its standard error
    is then on /dev/null (a C{-n} process whose errors go to /dev/null
    loses nothing by being taken for one).
    """
    try:
        return os.path.samefile("/proc/self/fd/2", os.devnull)
    except OSError:
        return False


class StalwartService(MultiService):
    """
    The node.  When C{exit_on_error} is set (under twistd), a start-up
    problem the operator must fix ends the process with one clear line
    instead of a traceback.
    """

    def __init__(self, exit_on_error: bool = False) -> None:
        super().__init__()
        self.exit_on_error = exit_on_error
        self.node: Optional[Node] = None

    def _guard(self, start: Callable[[], None]) -> None:
        try:
            start()
        except BaseException as e:
            # Children that did start own threads and files: stop them, or
            # their worker threads keep the process alive after the error.
            for child in reversed(list(self)):
                if child.running:
                    child.stopService()
            self.running = 0
            if self.exit_on_error and isinstance(e, _STARTUP_ERRORS):
                if _daemonized():
                    # twistd's parent process waits for the daemon's start
                    # report on a pipe, written only for an Exception; it
                    # prints (the first 100 bytes of) the message and
                    # exits 1; the whole line goes to the log.
                    Logger(observer=logs.observer).critical("stalwart-jmap: error: {error}", error=str(e))
                    raise StartupFailed(str(e)) from None
                # twistd has redirected sys.stderr into the log by now: say
                # it on the real stderr, where the operator is looking.
                print(f"stalwart-jmap: error: {e}", file=sys.__stderr__, flush=True)
                raise SystemExit(1) from None
            raise

    def stopService(self):
        """A leader first hands leadership over (clean shutdown), then every child stops."""
        cluster = self.node.cluster if self.node is not None else None
        if cluster is None or not cluster.running:
            return super().stopService()
        d = cluster.hand_over()
        d.addErrback(lambda failure: None)
        return d.addCallback(lambda _: super(StalwartService, self).stopService())

    def privilegedStartService(self) -> None:
        self._guard(super().privilegedStartService)

    def startService(self) -> None:
        self._guard(super().startService)
        if self.node is not None:
            authenticator = self.node.authenticator

            def applied(entry, result) -> None:
                if command_kind(entry.data).startswith(ACCOUNT_COMMANDS):
                    authenticator.accounts_changed()

            self.node.raft.driver.on_applied(applied)
            # A restored snapshot may change any account.
            self.node.raft.driver.on_restored(lambda meta: authenticator.accounts_changed())


def _account_handler(function):
    return lambda ctx: function(ctx.tx, ctx.command.args)


def build_service(
    config: ServerConfig,
    reactor=None,
    object_types: Iterable[ObjectType] = (),
    extensions: Iterable[Extension] = (),
    urandom: Callable[[int], bytes] = os.urandom,
    exit_on_error: bool = False,
    threads: bool = True,
    push_agent=None,
    make_rpc=None,
) -> StalwartService:
    """
    @param object_types: data types served with the standard methods
        (RFC 8620 section 5), besides the built-in ones.
    @param extensions: groups of data types with their own methods,
        tables and account set-up (L{Extension}).
    @param threads: C{False} runs the log writes, applies, reads and
        password hashing on the calling thread, so a test can run a whole
        node in-process on a fake reactor; production always uses threads.
    @param push_agent: the L{IAgent} PushSubscription deliveries use
        (default: an L{Agent} on C{reactor}).
    @param make_rpc: for a cluster node (encryption-key set), builds its
        RPC service from the cluster service's arguments (default: the
        real L{RPCService} configured from C{config}; tests pass a
        simulated network).
    """
    if reactor is None:
        from twisted.internet import reactor
    # LMTP delivery (stalwart.mail.delivery): its command and tables.  It
    # stores Emails: the mail tables are created even without the mail
    # extension (CREATE ... IF NOT EXISTS), so a delivery can never fail
    # on a missing table, which the state machine would take for a broken
    # disk.  Given extensions come after it and may replace its handler.
    delivery = Extension(handlers=DELIVERY_HANDLERS, schema=MAIL_SCHEMA + DELIVERY_SCHEMA)
    push = push_extension(config, reactor, urandom)
    extensions = [Extension(object_types=list(object_types)), delivery, push, *extensions]
    logs.set_level(config.log_level)
    methods = {"Core/echo": Echo(), "Blob/copy": BlobCopy()}
    writes = {"Blob/copy": apply_blob_copy}
    handlers = {}
    capabilities, account_capabilities = {}, {}
    for extension in extensions:
        for object_type in extension.object_types:
            standard = StandardMethods(object_type)
            methods.update(standard.methods())
            writes.update(standard.writes())
            capabilities.setdefault(object_type.capability, {})
        methods.update(extension.methods)
        writes.update(extension.writes)
        handlers.update(extension.handlers)
        capabilities.update(extension.capabilities)
        account_capabilities.update(extension.account_capabilities)
    account_created = [hook for extension in extensions for hook in extension.account_created]

    def create_account(ctx):
        account = accounts.create_account(ctx.tx, ctx.command.args)
        for hook in account_created:
            hook(ctx.tx, account["id"], ctx.command.args["now"])
        return account

    handlers.update({
        WRITE_COMMAND: WriteHandler(writes),
        UPLOAD_COMMAND: apply_upload,
        "account.create": create_account,
        "account.delete": _account_handler(accounts.delete_account),
        "account.password": _account_handler(accounts.set_password),
        "account.address.add": _account_handler(accounts.add_address),
        "account.address.remove": _account_handler(accounts.remove_address),
        "token.create": _account_handler(accounts.create_token),
        LEAVE_COMMAND: apply_leave,
    })
    schema = "\n".join(extension.schema for extension in extensions)
    top = StalwartService(exit_on_error=exit_on_error)
    cpu_worker = deferToThread if threads else synchronous_worker
    store = StoreService(config.data_dir, handlers, reactor, threads=threads, schema=schema)
    store.setName("store")
    store.setServiceParent(top)
    clustered = config.encryption_key is not None
    raft = RaftService(config.data_dir, store, reactor, urandom, threads=threads,
                       raft_config=raft_config(config.raft_election_timeout, config.raft_batch_max,
                                               config.raft_snapshot_entries),
                       clustered=clustered and bool(config.seed_nodes), read_replica=config.read_replica)
    raft.setName("raft")
    raft.setServiceParent(top)
    cluster = None
    if clustered:
        # A simulated RPC (tests) means no real network: no UDP gossip either.
        gossip = _gossip_factory(config, reactor, urandom) if make_rpc is None else None
        cluster = ClusterService(config, raft, store, reactor, make_rpc or _rpc_factory(config, reactor, urandom),
                                 make_gossip=gossip)
        cluster.setName("cluster")
        cluster.setServiceParent(top)

    class _LazyReader:
        # The reader exists once the store has started.
        def run(self, fn, *args):
            return store.reader.run(fn, *args)

    authenticator = Authenticator(_LazyReader(), cpu_worker, reactor, secret=urandom(32))
    node = Node(
        config, reactor, store, raft, authenticator, Dispatcher(methods), cpu_worker, urandom,
        capabilities=capabilities, account_capabilities=account_capabilities,
    )
    top.node = node
    node.cluster = cluster
    push_service = PushService(config, node, store, reactor, urandom, agent=push_agent)
    push_service.setName("push")
    push_service.setServiceParent(top)
    root = JmapRoot(node, push_service.resources)
    root.putChild(b"admin", AdminApi(node))
    web = JmapWebService(config, make_site(root, config), reactor)
    web.setName("jmap")
    web.setServiceParent(top)
    if config.lmtp_port:
        lmtp = LmtpService(config, node, reactor)
        lmtp.setName("lmtp")
        lmtp.setServiceParent(top)
    if OUTBOX_COMMAND in handlers:
        _add_outbox(top, config, node, reactor)
    return top


def _rpc_factory(config: ServerConfig, reactor, urandom: Callable[[int], bytes]):
    """The cluster's RPC service, configured from the rpc-* keys."""
    from stalwart.cluster.rpc.service import RPCService

    # A message must hold the largest log entry (an upload or a message
    # with its command) and an AppendEntries batch.
    message_bytes_max = max(64 << 20, max(config.max_size_upload, config.mail_max_size) + config.raft_batch_max + (1 << 20))

    def make(**arguments):
        return RPCService(
            reactor=reactor, bind_addr=config.rpc_bind_addr, port=config.rpc_port,
            encryption_key=config.encryption_key, accepted_keys=config.encryption_key_accept,
            data_dir=config.data_dir, rng=random.SystemRandom(),
            urandom=urandom, timeout_ms=config.rpc_timeout, backoff_max_ms=config.rpc_backoff_max,
            cert_path=config.rpc_cert_path, key_path=config.rpc_key_path,
            message_bytes_max=message_bytes_max, **arguments,
        )

    return make


def _gossip_factory(config: ServerConfig, reactor, urandom: Callable[[int], bytes]):
    """SWIM gossip on rpc-port over UDP, configured from the keys."""
    from stalwart.cluster.swim.config import SwimConfig
    from stalwart.cluster.swim.service import GossipService

    interval = config.peer_ping_interval / 1000
    swim = SwimConfig(ping_interval=interval, ping_timeout=min(0.15, interval * 0.3))

    def make(me, on_event):
        keys = [config.encryption_key, *config.encryption_key_accept]  # the first seals, all open
        return GossipService(reactor, reactor, swim, me, config.seed_nodes, keys,
                             random.SystemRandom(), urandom, on_event, bind_host=config.rpc_bind_addr)

    return make


#: The mail extension's sign that submissions are served: start its outbox.
OUTBOX_COMMAND = "mail.submission.claim"


def _add_outbox(top: StalwartService, config: ServerConfig, node: Node, reactor) -> None:
    """
    The C{"outbox"} service: sends EmailSubmissions and vacation replies
    through smtp-relay-host, from the leader (stalwart.mail.outbox).  It
    starts after "raft", whose driver it listens to.
    """
    from stalwart.mail.autoreply import AutoReplier
    from stalwart.mail.outbox import OutboxService
    from stalwart.mail.relay import relay_from_config

    outbox = OutboxService(node, relay_from_config(config, reactor), reactor, AutoReplier)
    outbox.setName("outbox")
    outbox.setServiceParent(top)


def makeService(options) -> StalwartService:
    """twistd's entry point: C{options} is a parsed L{Options}."""
    from stalwart.mail.extension import mail_extension

    return build_service(options.config, extensions=[mail_extension(options.config)], exit_on_error=True)
