"""mediasrv plugin "strongauth": strong electronic identification of joining peers (OpenID
Connect ID tokens, JWS and JWE) with a hash-chained audit trail."""

from mediasrv_strongauth.plugin import StrongAuthPlugin

__all__ = ["StrongAuthPlugin"]
__version__ = "0.1.0"
