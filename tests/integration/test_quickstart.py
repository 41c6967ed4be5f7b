# -*- test-case-name: tests.integration.test_quickstart -*-
"""
The clustering quick start, as written (../shared/seed/cluster-quickstart.txt,
"Example"): its three commands, with only the program and certificate paths
adapted, started side by side in one working directory, give one cluster.

They name no data directory, no LMTP port and no admin secret: the nodes
must pick a data directory each (./stalwart-data-<jmap-port>), an LMTP port
each, and find each other from the ring of seeds alone.  The test uses the
quick start's own ports (8081-8083, 7911-7913) and is skipped when one of
them is taken on this machine.
"""

from __future__ import annotations

import os
import socket
import sys

from twisted.internet import reactor
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.trial.unittest import SkipTest, TestCase

from tests.integration.server import _Recorder, child_environment, http_client, poll_until
from tests.integration.test_https import self_signed

_RUN = "from stalwart.service.run import main; main()"
JMAP_PORTS = (8081, 8082, 8083)
RPC_PORTS = (7911, 7912, 7913)
FORM_SECONDS_MAX = 30


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted listens: TIME_WAIT is no obstacle
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class QuickStartTests(TestCase):
    timeout = 90

    @inlineCallbacks
    def test_the_three_commands(self):
        """One founder, two members promoted to voters; a data directory per node; every node answers HTTPS."""
        ports = JMAP_PORTS + RPC_PORTS + tuple(11200 + p - 8080 for p in JMAP_PORTS)
        if not all(_free(p) for p in ports):
            raise SkipTest("a port of the quick start is taken on this machine")
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        cert, key = self_signed()
        for name, data in (("jmap.crt", cert), ("jmap.key", key)):
            with open(os.path.join(directory, name), "wb") as f:
                f.write(data)
        nodes = []
        for jmap_port, rpc_port, seed in zip(JMAP_PORTS, RPC_PORTS, ("127.0.0.1:7912", "127.0.0.1:7913", "127.0.0.1:7911")):
            arguments = [  # the quick start's command, word for word but for the paths
                f"--jmap-url=https://localhost:{jmap_port}",
                f"--jmap-port={jmap_port}",
                f"--jmap-cert-path={directory}/jmap.crt",
                f"--jmap-key-path={directory}/jmap.key",
                "--encryption-key=SECURE_ENCRYPTION_KEY",
                "--rpc-advertise-addr=127.0.0.1",
                f"--rpc-port={rpc_port}",
                f"--seed-nodes={seed}",
            ]
            recorder = _Recorder()
            transport = reactor.spawnProcess(recorder, sys.executable, [sys.executable, "-c", _RUN, *arguments],
                                             env=child_environment(), path=directory)
            nodes.append((recorder, transport))

        def stop():
            for recorder, transport in nodes:
                if recorder.reason is None:
                    transport.signalProcess("KILL")
            return DeferredList([recorder.ended for recorder, _ in nodes])

        self.addCleanup(stop)

        def output():
            return [bytes(r.output[1]).decode("utf-8", "replace") for r, _ in nodes]

        def formed():
            logs = "".join(output())
            return logs.count("founding the cluster") == 1 and logs.count("configuration change: promote") == 2

        try:
            yield poll_until("one cluster founded, two nodes promoted", formed, FORM_SECONDS_MAX, 0.2)
        except AssertionError as e:
            raise AssertionError(f"{e}\n" + "\n----\n".join(o[-3000:] for o in output())) from None
        client = http_client(trust_pem=cert)
        for (recorder, _), jmap_port in zip(nodes, JMAP_PORTS):
            self.assertIsNone(recorder.reason, output())
            self.assertTrue(os.path.isdir(os.path.join(directory, f"stalwart-data-{jmap_port}")))
            response = yield client.get(f"https://localhost:{jmap_port}/.well-known/jmap", timeout=10)
            yield response.content()
            self.assertEqual(response.code, 401)  # HTTPS with the given certificate; credentials needed
        self.assertNotIn("Traceback", "".join(output()))
