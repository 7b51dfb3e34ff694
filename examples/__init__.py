"""Applications composed from mediasrv (the video visit service) and example plugins."""
