# forwarder: not yet written
