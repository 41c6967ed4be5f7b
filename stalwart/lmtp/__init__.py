"""
LMTP delivery (RFC 2033): the protocol on twisted.mail's ESMTP classes
(L{stalwart.lmtp.server}) and the C{"lmtp"} child service that listens
for it (L{stalwart.lmtp.service}).  What a delivery does to the state is
in L{stalwart.mail.delivery}.
"""

__all__ = ["server", "service"]
