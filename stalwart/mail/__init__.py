"""JMAP Mail (RFC 8621): messages, mailboxes, threads, identities, submissions, vacation."""
