"""More than one process or node: the supervisor of worker processes and its signaling relay,
the links of rooms spread over workers, the Redis room directory of nodes, relay proofs, the
admin forwarding and the supervisor's metrics.

It builds on the core, the signaling and the HTTP surface; nothing outside this package
imports it but the command line (``mediasrv serve --processes``).
"""
