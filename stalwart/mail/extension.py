# -*- test-case-name: tests.mail.test_mailbox -*-
"""
The mail L{Extension} (RFC 8621): the Mailbox, Email, Thread,
SearchSnippet, Identity, EmailSubmission and VacationResponse data types, the capabilities C{urn:ietf:params:jmap:mail},
C{:submission} and C{:vacationresponse} with each account's limits
(RFC 8621 1.3), the email tables, and what a new account gets: the six
usual Mailboxes with their roles, one Identity per address and its
VacationResponse.
"""

from __future__ import annotations

from typing import Optional, Sequence

import attrs

from stalwart.jmap.capabilities import MAIL, SUBMISSION, VACATION
from stalwart.mail.compose import compose_message
from stalwart.mail.email_methods import EmailMethods
from stalwart.mail.identity import Identity, IdentityMethods, account_addresses
from stalwart.mail.parse import email_properties, parse_message
from stalwart.mail.mailbox import Mailbox, MailboxMethods
from stalwart.mail.schema import MAIL_SCHEMA
from stalwart.mail.submission import (
    SUBMISSION_HANDLERS, SUBMISSION_SCHEMA, EmailSubmission, SubmissionLimits, SubmissionMethods,
)
from stalwart.mail.autoreply import AUTOREPLY_HANDLERS, AUTOREPLY_SCHEMA
from stalwart.mail.vacation import VacationMethods, VacationResponse, create_singleton
from stalwart.service.extension import Extension

__all__ = ["mail_extension", "DEFAULT_MAILBOXES", "EMAIL_SORT_OPTIONS"]

#: The Mailboxes of a new account: (name, role), shown in this order.
DEFAULT_MAILBOXES = (
    ("Inbox", "inbox"), ("Drafts", "drafts"), ("Sent", "sent"),
    ("Trash", "trash"), ("Junk", "junk"), ("Archive", "archive"),
)

#: Email/query sort properties (RFC 8621 4.4.2) announced in the mail
#: capability; Email/query must accept exactly these.
EMAIL_SORT_OPTIONS = (
    "receivedAt", "sentAt", "size", "from", "to", "subject",
    "hasKeyword", "allInThreadHaveKeyword", "someInThreadHaveKeyword",
)


@attrs.frozen
class _Transaction:
    """What an apply function needs of L{stalwart.store.apply.ApplyContext} to run in a hook."""

    tx: object


def mail_extension(
    config=None,
    mailbox: Optional[Mailbox] = None,
    email_sort_options: Sequence[str] = EMAIL_SORT_OPTIONS,
) -> Extension:
    """
    @param config: the L{stalwart.service.config.ServerConfig}; its upload
        limit bounds the attachments of one Email (they are uploaded first),
        its C{mail-*} keys the Email methods and its C{mailbox-*} keys the
        Mailbox type.
    @param mailbox: the Mailbox type with its limits (defaults: from
        C{config}, else L{Mailbox}()).
    """
    if mailbox is None:
        mailbox = Mailbox() if config is None else Mailbox(
            name_bytes_max=config.mailbox_name_max_len, depth_max=config.mailbox_max_depth,
            mailboxes_max=config.mailbox_max_total)
    identity, vacation = Identity(), VacationResponse()
    limits = {} if config is None else {
        "message_bytes_max": config.mail_max_size, "import_items_max": config.mail_import_max_items,
        "parse_items_max": config.mail_parse_max_items}
    email_methods = EmailMethods(parse_message, email_properties, compose_message, **limits)
    submission_limits = SubmissionLimits(message_bytes_max=config.mail_max_size) if config is not None else SubmissionLimits()
    submissions = SubmissionMethods(EmailSubmission(), email_methods, parse_message, submission_limits)
    typed = [MailboxMethods(mailbox), IdentityMethods(identity), VacationMethods(vacation), email_methods, submissions]
    methods, writes = {}, {}
    for t in typed:
        methods.update(t.methods())
        writes.update(t.writes())
    mailbox_methods, identity_methods = typed[0], typed[1]

    def account_created(tx, account_id: str, now: str) -> None:
        # Through Foo/set's own apply function: the same rules, ids from
        # the account's counter, and the changes recorded.
        boxes = {role: {"name": name, "role": role, "sortOrder": 10 * (n + 1)}
                 for n, (name, role) in enumerate(DEFAULT_MAILBOXES)}
        identities = {f"i{n}": {"email": address} for n, address in enumerate(account_addresses(tx, account_id))}
        for methods_, create in ((mailbox_methods, boxes), (identity_methods, identities)):
            if create:
                args = {"ifInState": None, "create": create, "update": {}, "destroy": [], "options": {}}
                ((_, response),) = methods_.apply_set(_Transaction(tx), account_id, args, {}, now)
                assert response["notCreated"] is None, response["notCreated"]
        create_singleton(tx, account_id, vacation)

    upload_max = config.max_size_upload if config is not None else 50_000_000
    return Extension(
        methods=methods,
        writes=writes,
        capabilities={MAIL: {}, SUBMISSION: {}, VACATION: {}},
        account_capabilities={
            MAIL: {
                "maxMailboxesPerEmail": None,
                "maxMailboxDepth": mailbox.depth_max,
                "maxSizeMailboxName": mailbox.name_bytes_max,
                "maxSizeAttachmentsPerEmail": upload_max,
                "emailQuerySortOptions": list(email_sort_options),
                "mayCreateTopLevelMailbox": True,
            },
            SUBMISSION: {"maxDelayedSend": 0, "submissionExtensions": {}},
            VACATION: {},
        },
        handlers={**SUBMISSION_HANDLERS, **AUTOREPLY_HANDLERS},
        schema=MAIL_SCHEMA + SUBMISSION_SCHEMA + AUTOREPLY_SCHEMA,
        account_created=[account_created],
    )
