"""mediasrv plugin: acting on behalf of another person (guardianship and mandates)."""
