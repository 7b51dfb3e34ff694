"""The video visit service: an example application on mediasrv and its plugins (in progress:
so far its development identity provider, dev_idp)."""
