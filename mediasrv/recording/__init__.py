"""Recording: journals of RTP packets written by the server, and ``mediasrv-rec``, which turns
them into playable files (see docs/recording.md).

Post-processing: :func:`mediasrv.recording.postprocess.remux` (one participant, no
re-encoding) and :func:`mediasrv.recording.compose.compose_room` (a whole room, tiled and
mixed). The journal format: :mod:`mediasrv.recording.journal`. Nothing is imported here, so
that the server can use the journal module without loading PyAV.
"""
