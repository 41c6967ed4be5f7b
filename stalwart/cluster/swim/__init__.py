"""
SWIM gossip membership (DESIGN.md section 3): sealed UDP on C{rpc-port},
round-robin probes with indirect probes and nacks, phi accrual suspicion
confirmed or refuted by incarnation numbers, Lifeguard local health.

Pure core: L{stalwart.cluster.swim.members.Membership}; shell:
L{stalwart.cluster.swim.protocol} and L{stalwart.cluster.swim.service.GossipService}.
"""

__all__ = ["awareness", "broadcasts", "codec", "config", "members", "messages", "probe", "protocol",
           "seal", "service", "suspicion"]
