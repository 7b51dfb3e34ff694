# udp: not yet written
