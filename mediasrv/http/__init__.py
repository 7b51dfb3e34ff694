"""The HTTP surface of a MediaServer: :class:`~mediasrv.http.frontend.HttpFrontend` (the
listeners), the aiohttp application (signaling WebSocket, browser SDK, health checks), the
admin API and its OpenAPI description, JSON body helpers, and the Prometheus metrics.

It is built from a MediaServer and imports the core and the signaling; the core never imports
it.
"""
