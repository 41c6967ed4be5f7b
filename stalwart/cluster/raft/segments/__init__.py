"""
The Raft log's storage: append-only segment files with CRC-checked records,
a recovery scan that cuts a torn tail and refuses other damage, and an
in-memory file system that simulates crashes (DESIGN.md section 4).

The format and recovery procedure are documented in
L{stalwart.cluster.raft.segments.format}.
"""

__all__ = ["format", "files", "recovery", "memfs"]
