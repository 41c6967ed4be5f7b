"""
A stand-in for C{stalwart.mail.parse.parse_message} while it is being
written: the real parser when it can be imported, else a minimal one on
the standard library that has what L{stalwart.mail.emails.add_email}
reads.
"""

import email
import email.policy
import re

__all__ = ["parse_for_tests"]

_ID = re.compile(r"<([^<>\s]+)>")


class _Parsed:
    def __init__(self, raw: bytes) -> None:
        self._message = email.message_from_bytes(raw, policy=email.policy.compat32)
        self.size = len(raw)
        self.headers = [(k, str(v)) for k, v in self._message.items()]
        self.has_attachment = False
        body = self._message.get_payload()
        self.preview = body[:256] if isinstance(body, str) else ""

    def header_values(self, name):
        return [str(v) for v in self._message.get_all(name, [])]

    def _ids(self, name):
        return [i for v in self.header_values(name) for i in _ID.findall(v)]

    def subject(self):
        return str(self._message.get("Subject", ""))

    def message_ids(self):
        return self._ids("Message-ID")

    def in_reply_to(self):
        return self._ids("In-Reply-To")

    def references(self):
        return self._ids("References")

    def sent_at(self):
        return None

    def search_fields(self):
        return {"subject": self.subject(), "body": self.preview}


def _fallback(raw: bytes):
    return _Parsed(raw)


try:
    from stalwart.mail.parse import parse_message as parse_for_tests
except ImportError:
    parse_for_tests = _fallback
