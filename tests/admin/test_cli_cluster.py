# -*- test-case-name: tests.admin.test_cli_cluster -*-
"""
Tests for C{stalwart-jmap-admin cluster status}, with the fake transport of
L{tests.admin.test_cli}.
"""

import json

from tests.admin.test_cli import CLITestCase

LEADER = {
    "node": "n1", "role": "leader", "term": 7, "leader": "n1",
    "lastIndex": 120, "commitIndex": 118, "appliedIndex": 117,
    "members": [
        {"id": "n1", "voter": True, "role": "leader", "lag": 0},
        {"id": "n2", "voter": True, "role": "voter", "match": 100, "next": 101,
         "state": "probe", "recentActive": False, "lag": 20},
        {"id": "r1", "voter": False, "role": "learner", "match": 120, "next": 121,
         "state": "replicate", "recentActive": True, "lag": 0},
    ],
}

FOLLOWER = {
    "node": "n2", "role": "follower", "term": 7, "leader": "n1",
    "lastIndex": 119, "commitIndex": 118, "appliedIndex": 118,
    "members": [
        {"id": "n2", "voter": True, "role": "follower", "lag": None},
        {"id": "n1", "voter": True, "role": "voter", "lag": None},
    ],
}


class ClusterStatusTests(CLITestCase):
    """
    The C{cluster status} command.
    """

    def test_leader_table(self) -> None:
        """
        On the leader: one row per member; this node's row has the term and
        its indexes, a peer's LAST is its match index, and every lag is known.
        """
        self.answer(200, LEADER)
        self.assertEqual(self.run_cli("cluster", "status"), 0)
        self.assertEqual((self.requests[0].method, self.requests[0].url),
                         ("GET", "http://127.0.0.1:8080/admin/cluster"))
        self.assertEqual(
            self.stdout.getvalue(),
            "MEMBER          ROLE     TERM  LAST  COMMIT  APPLIED  LAG\n"
            "n1 (this node)  leader   7     120   118     117      0\n"
            "n2              voter    -     100   -       -        20\n"
            "r1              learner  -     120   -       -        0\n",
        )

    def test_follower_table(self) -> None:
        """On a follower the leader is marked and unknown values are '-'."""
        self.answer(200, FOLLOWER)
        self.assertEqual(self.run_cli("cluster", "status"), 0)
        self.assertEqual(
            self.stdout.getvalue(),
            "MEMBER          ROLE            TERM  LAST  COMMIT  APPLIED  LAG\n"
            "n2 (this node)  follower        7     119   118     118      -\n"
            "n1              voter (leader)  -     -     -       -        -\n",
        )

    def test_json(self) -> None:
        """C{--json} prints the server's answer as it is."""
        self.answer(200, LEADER)
        self.assertEqual(self.run_cli("cluster", "status", "--json"), 0)
        self.assertEqual(json.loads(self.stdout.getvalue()), LEADER)

    def test_unexpected_answer(self) -> None:
        """An answer without members is an error, exit status 1."""
        self.answer(200, {"node": "n1"})
        self.assertEqual(self.run_cli("cluster", "status"), 1)
        self.assertIn("'members'", self.stderr.getvalue())
        self.assertEqual(self.stdout.getvalue(), "")

    def test_refused_secret(self) -> None:
        """A 401 is the usual one-line error."""
        self.answer(401, {"detail": "wrong admin secret"})
        self.assertEqual(self.run_cli("cluster", "status"), 1)
        self.assertIn("refused the admin secret", self.stderr.getvalue())

    def test_no_subcommand(self) -> None:
        """C{cluster} alone is a usage error."""
        self.assertEqual(self.run_cli("cluster"), 2)
        self.assertEqual(self.requests, [])
