# cython: language_level=3
"""mediasrv._core: the compiled data plane.

One extension module, built from small units that are included here in dependency order
(the way uvloop builds ``uvloop.loop``). C library declarations live in ``cext/includes/*.pxd``.
Each unit exposes a small typed Python API (see ``mediasrv/_core.pyi``) and ``cdef`` functions
that later units call from C without touching Python objects per packet.
"""

include "rtp.pyx"
include "vp8.pyx"
include "h264.pyx"
include "rtcp.pyx"
include "srtp.pyx"
include "udp.pyx"
include "packet_cache.pyx"
include "forwarder.pyx"
include "journal.pyx"
include "bwe.pyx"
include "plane.pyx"
include "tcp.pyx"
include "bench_support.pyx"
