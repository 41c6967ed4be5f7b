"""
Cluster RPC: AMP over TLS between nodes, open only to peers that prove they
hold the cluster key (DESIGN.md section 3).  It carries Raft messages and
makes no Raft decisions.
"""

__all__ = ["auth", "chunks", "codec", "commands", "peers", "protocol", "service", "tls"]
