# -*- test-case-name: tests.mail.test_store -*-
"""
Tables of the mail data (RFC 8621), beside the generic object rows.

Mailboxes, identities and the vacation response are generic JSON objects
(L{stalwart.store.objects}); emails have tables of their own because
mailboxes hold many thousands and queries filter and sort them:

  - C{emails}: one row per Email with what sorting, filtering, threading
    and Email/get's metadata need, and (C{summary}, JSON) the header
    properties a mail client lists (from, to, subject, ...), so that a
    message list needs no parsing; everything else is parsed from the
    stored message (C{blob_id}) when asked for;
  - C{email_mailboxes}: the mailboxIds, one row per (mailbox, email);
  - C{email_keywords}: the keywords (lower case, RFC 8621 4.1.1), one row
    per (email, keyword);
  - C{thread_keys}: Message-IDs seen in an account and the thread they
    belong to (threading by References/In-Reply-To/Message-ID);
  - C{email_text}: the full-text index (SQLite FTS5) keyed by
    C{emails.rowid}; it keeps its text (bounded per message) so that
    rows can be deleted and SearchSnippet can highlight matches;
  - C{mailbox_counts}: the four counts of each Mailbox holding Emails,
    kept by every write of L{stalwart.mail.emails} (no row: all zero).

Email/query's default sort is by C{receivedAt} within a Mailbox: the
C{email_mailboxes} rows of a Mailbox are found by its primary key, and
C{emails_by_received} serves the sort.
"""

__all__ = ["MAIL_SCHEMA"]

MAIL_SCHEMA = """
CREATE TABLE IF NOT EXISTS emails (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    blob_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    sent_at TEXT,
    subject TEXT NOT NULL DEFAULT '',
    base_subject TEXT NOT NULL DEFAULT '',
    from_text TEXT NOT NULL DEFAULT '',
    to_text TEXT NOT NULL DEFAULT '',
    has_attachment INTEGER NOT NULL DEFAULT 0,
    preview TEXT NOT NULL DEFAULT '',
    summary TEXT NOT NULL DEFAULT '{}',
    UNIQUE (account_id, id)
);
CREATE INDEX IF NOT EXISTS emails_by_thread ON emails(account_id, thread_id);
CREATE INDEX IF NOT EXISTS emails_by_received ON emails(account_id, received_at);
CREATE TABLE IF NOT EXISTS email_mailboxes (
    account_id TEXT NOT NULL,
    mailbox_id TEXT NOT NULL,
    email_id TEXT NOT NULL,
    PRIMARY KEY (account_id, mailbox_id, email_id),
    FOREIGN KEY (account_id, email_id) REFERENCES emails(account_id, id) ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX IF NOT EXISTS email_mailboxes_by_email ON email_mailboxes(account_id, email_id);
CREATE TABLE IF NOT EXISTS email_keywords (
    account_id TEXT NOT NULL,
    email_id TEXT NOT NULL,
    keyword TEXT NOT NULL,
    PRIMARY KEY (account_id, email_id, keyword),
    FOREIGN KEY (account_id, email_id) REFERENCES emails(account_id, id) ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX IF NOT EXISTS email_keywords_by_keyword ON email_keywords(account_id, keyword);
CREATE TABLE IF NOT EXISTS thread_keys (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    PRIMARY KEY (account_id, key)
);
CREATE INDEX IF NOT EXISTS thread_keys_by_thread ON thread_keys(account_id, thread_id);
CREATE TABLE IF NOT EXISTS mailbox_counts (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    mailbox_id TEXT NOT NULL,
    total_emails INTEGER NOT NULL,
    unread_emails INTEGER NOT NULL,
    total_threads INTEGER NOT NULL,
    unread_threads INTEGER NOT NULL,
    PRIMARY KEY (account_id, mailbox_id)
);
CREATE VIRTUAL TABLE IF NOT EXISTS email_text USING fts5(
    subject, sender, recipients, cc, bcc, body, headers
);
"""
