"""Tests for L{stalwart.service.run}: the stalwart-jmap command."""

from twisted.trial.unittest import SynchronousTestCase

from stalwart.service.options import TwistdOptions
from stalwart.service.run import twistd_arguments


class RunTests(SynchronousTestCase):
    def test_foreground_without_pid_file(self) -> None:
        """Several nodes can run from one directory: foreground, no twistd.pid."""
        arguments = twistd_arguments(["--jmap-port=8081", "--rpc-port=7911"])
        self.assertEqual(arguments[:3], ["--nodaemon", "--pidfile=", "stalwart-jmap"])
        self.assertEqual(arguments[3:], ["--jmap-port=8081", "--rpc-port=7911"])

    def test_arguments_reach_the_plugin(self) -> None:
        """What follows the plugin name is the server's own options."""
        options = TwistdOptions()
        options.parseOptions(twistd_arguments(["--jmap-port=8081"])[3:])
        self.assertEqual(options.config.jmap_port, 8081)
