"""SDP offer/answer with browsers and aiortc, as pure functions of descriptions and the
server's parameters (what mediasoup's ``ortc.ts`` is to its transports).

It imports nothing of mediasrv but ``rtp_capabilities``: the core's transports and peers use
it, so it sits below them.
"""
