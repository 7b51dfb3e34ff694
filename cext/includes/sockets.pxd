# BSD sockets, Linux flavour: the part mediasrv's batched UDP I/O uses (recvmmsg/sendmmsg need
# _GNU_SOURCE, which Python.h defines).

from libc.stdint cimport uint16_t, uint32_t
from posix.time cimport timespec
from posix.uio cimport iovec

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t

    enum:
        AF_INET
        AF_INET6
        MSG_DONTWAIT
        MSG_TRUNC

    struct sockaddr:
        sa_family_t sa_family

    struct sockaddr_storage:
        sa_family_t ss_family

    struct msghdr:
        void* msg_name
        socklen_t msg_namelen
        iovec* msg_iov
        size_t msg_iovlen
        void* msg_control
        size_t msg_controllen
        int msg_flags

    struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len

    int recvmmsg(int sockfd, mmsghdr* msgvec, unsigned int vlen, int flags, timespec* timeout)
    int sendmmsg(int sockfd, mmsghdr* msgvec, unsigned int vlen, int flags)
    int getsockname(int sockfd, sockaddr* addr, socklen_t* addrlen)
    # ICE-TCP connections (cext/tcp.pyx): stream reads and writes
    ssize_t recv(int sockfd, void* buf, size_t len, int flags)
    ssize_t send(int sockfd, const void* buf, size_t len, int flags)

    enum:
        MSG_NOSIGNAL

cdef extern from "<netinet/in.h>" nogil:
    enum:
        INET_ADDRSTRLEN
        INET6_ADDRSTRLEN

    struct in_addr:
        uint32_t s_addr

    struct in6_addr:
        unsigned char s6_addr[16]

    struct sockaddr_in:
        sa_family_t sin_family
        uint16_t sin_port
        in_addr sin_addr

    struct sockaddr_in6:
        sa_family_t sin6_family
        uint16_t sin6_port
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id

    uint16_t htons(uint16_t value)
    uint16_t ntohs(uint16_t value)
    uint32_t htonl(uint32_t value)
    uint32_t ntohl(uint32_t value)

cdef extern from "<arpa/inet.h>" nogil:
    int inet_pton(int af, const char* src, void* dst)
    const char* inet_ntop(int af, const void* src, char* dst, socklen_t size)

cdef extern from "<errno.h>" nogil:
    enum:
        EWOULDBLOCK     # not in Cython's libc.errno; equal to EAGAIN on Linux
