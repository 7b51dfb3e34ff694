# rtcp: not yet written
