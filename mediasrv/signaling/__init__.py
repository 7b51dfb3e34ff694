"""The signaling protocol of docs/protocol.md: one :class:`~mediasrv.signaling.session.
SignalingSession` per client connection (JSON requests, responses and notifications over a
WebSocket), on top of rooms and peers.

It imports the core and the SDP negotiation; the core never imports it.
"""
