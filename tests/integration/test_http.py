# -*- test-case-name: tests.integration.test_http -*-
"""
A real C{twistd -n stalwart-jmap} process over plain HTTP: the admin
command line, the session (RFC 8620 2), an API request (3), an upload (6.1)
and a download (6.2), a clean stop and a restart on the same data directory.
"""

from __future__ import annotations

import json
import random

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from tests.integration.server import ServerTestMixin, http_client, run_admin_cli

CORE = "urn:ietf:params:jmap:core"


class HttpLifecycleTests(ServerTestMixin, TestCase):
    timeout = 60

    @inlineCallbacks
    def test_account_session_echo_blob_restart(self):
        """
        An account made with C{stalwart-jmap-admin} can fetch its session,
        echo through the API, upload a blob and download the same bytes;
        SIGTERM ends the process cleanly (see L{assertCleanStop}) with a log
        free of tracebacks;
        after a restart on the same data directory the account, the blob and
        its download are still there.
        """
        client = http_client()
        server = yield self.start_server(client=client)
        out, err, code = yield run_admin_cli(server.url, [
            "account", "create", "alice", "--password", "correct horse",
            "--email", "alice@example.com", "--quota", "1000000",
        ])
        self.assertEqual((code, err), (0, ""), out)
        self.assertIn("alice", out)
        auth = ("alice", "correct horse")

        _, session, _ = yield self.json_request(client, "GET", server.url + "/.well-known/jmap", auth=auth, expect=200)
        self.assertEqual(session["username"], "alice")
        [account_id] = session["accounts"]
        self.assertEqual(session["apiUrl"], server.url + "/jmap/api")
        self.assertIn(CORE, session["capabilities"])

        request = {"using": [CORE], "methodCalls": [["Core/echo", {"hello": "world", "n": [1, 2]}, "c1"]]}
        _, answer, _ = yield self.json_request(client, "POST", session["apiUrl"], request, auth=auth, expect=200)
        self.assertEqual(answer["methodResponses"], [["Core/echo", {"hello": "world", "n": [1, 2]}, "c1"]])

        # Every byte value, so an encoding slip anywhere would show.
        data = bytes(range(256)) + random.Random(7).randbytes(70_000)
        upload_url = session["uploadUrl"].replace("{accountId}", account_id)
        _, uploaded, _ = yield self.json_request(
            client, "POST", upload_url, data, auth=auth, expect=201,
            headers={"Content-Type": ["application/octet-stream"]})
        self.assertEqual((uploaded["accountId"], uploaded["size"]), (account_id, len(data)))
        download_url = (
            session["downloadUrl"].replace("{accountId}", account_id).replace("{blobId}", uploaded["blobId"])
            .replace("{name}", "data.bin").replace("{type}", "application/octet-stream")
        )
        yield self._check_download(client, download_url, auth, data)

        reason = yield server.stop()
        self.assertCleanStop(server, reason)
        self.assertEqual(server.stderr, "")

        again = yield self.start_server(data_dir=server.data_dir, client=client, name="restarted")
        out, err, code = yield run_admin_cli(again.url, ["account", "list", "--json"])
        self.assertEqual(code, 0, err)
        listed = json.loads(out)
        accounts = listed["accounts"] if isinstance(listed, dict) else listed
        [alice] = [a for a in accounts if a["name"] == "alice"]
        self.assertEqual((alice["id"], alice["emails"], alice["usedBytes"]), (account_id, ["alice@example.com"], len(data)))
        _, session2, _ = yield self.json_request(client, "GET", again.url + "/jmap/session", auth=auth, expect=200)
        self.assertEqual(list(session2["accounts"]), [account_id])
        yield self._check_download(client, download_url.replace(server.url, again.url), auth, data)
        reason = yield again.stop()
        self.assertCleanStop(again, reason)

    @inlineCallbacks
    def _check_download(self, client, url, auth, data):
        response = yield client.get(url, auth=auth)
        body = yield response.content()
        self.assertEqual(response.code, 200, body[:300])
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/octet-stream"])
        self.assertTrue(body == data, f"downloaded {len(body)} bytes differ from the {len(data)} uploaded")
