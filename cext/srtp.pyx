# srtp: not yet written
