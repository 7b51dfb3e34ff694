# libsrtp 2.x (<srtp2/srtp.h>): the part of the API mediasrv uses.
#
# Only the struct fields mediasrv reads or writes are declared; the C compiler sees the real
# definitions, so sizeof() and zero-initialisation cover the whole struct.

cdef extern from "srtp2/srtp.h" nogil:
    enum:
        SRTP_MAX_TAG_LEN
        SRTP_MAX_MKI_LEN
        # Bytes srtp_protect() may append; srtp_protect_rtcp() documents 4 more (the SRTCP
        # index), which without an MKI still fits: tag (<= 16) + index (4) << 144.
        SRTP_MAX_TRAILER_LEN

    ctypedef enum srtp_err_status_t:
        srtp_err_status_ok
        srtp_err_status_fail
        srtp_err_status_bad_param
        srtp_err_status_alloc_fail
        srtp_err_status_dealloc_fail
        srtp_err_status_init_fail
        srtp_err_status_terminus
        srtp_err_status_auth_fail
        srtp_err_status_cipher_fail
        srtp_err_status_replay_fail
        srtp_err_status_replay_old
        srtp_err_status_algo_fail
        srtp_err_status_no_such_op
        srtp_err_status_no_ctx
        srtp_err_status_cant_check
        srtp_err_status_key_expired
        srtp_err_status_socket_err
        srtp_err_status_signal_err
        srtp_err_status_nonce_bad
        srtp_err_status_read_fail
        srtp_err_status_write_fail
        srtp_err_status_parse_err
        srtp_err_status_encode_err
        srtp_err_status_semaphore_err
        srtp_err_status_pfkey_err
        srtp_err_status_bad_mki
        srtp_err_status_pkt_idx_old
        srtp_err_status_pkt_idx_adv

    ctypedef enum srtp_profile_t:
        srtp_profile_reserved
        srtp_profile_aes128_cm_sha1_80
        srtp_profile_aes128_cm_sha1_32
        srtp_profile_null_sha1_80
        srtp_profile_null_sha1_32
        srtp_profile_aead_aes_128_gcm
        srtp_profile_aead_aes_256_gcm

    ctypedef enum srtp_ssrc_type_t:
        ssrc_undefined
        ssrc_specific
        ssrc_any_inbound
        ssrc_any_outbound

    ctypedef struct srtp_crypto_policy_t:
        int cipher_key_len
        int auth_key_len
        int auth_tag_len

    ctypedef struct srtp_ssrc_t:
        srtp_ssrc_type_t type
        unsigned int value

    ctypedef struct srtp_policy_t:
        srtp_ssrc_t ssrc
        srtp_crypto_policy_t rtp
        srtp_crypto_policy_t rtcp
        unsigned char* key
        unsigned long window_size
        int allow_repeat_tx
        srtp_policy_t* next

    ctypedef struct srtp_ctx_t:
        pass
    ctypedef srtp_ctx_t* srtp_t

    srtp_err_status_t srtp_init()
    srtp_err_status_t srtp_create(srtp_t* session, const srtp_policy_t* policy)
    srtp_err_status_t srtp_dealloc(srtp_t session)

    srtp_err_status_t srtp_protect(srtp_t ctx, void* rtp_hdr, int* len_ptr)
    srtp_err_status_t srtp_unprotect(srtp_t ctx, void* srtp_hdr, int* len_ptr)
    srtp_err_status_t srtp_protect_rtcp(srtp_t ctx, void* rtcp_hdr, int* pkt_octet_len)
    srtp_err_status_t srtp_unprotect_rtcp(srtp_t ctx, void* srtcp_hdr, int* pkt_octet_len)

    srtp_err_status_t srtp_crypto_policy_set_from_profile_for_rtp(
        srtp_crypto_policy_t* policy, srtp_profile_t profile)
    srtp_err_status_t srtp_crypto_policy_set_from_profile_for_rtcp(
        srtp_crypto_policy_t* policy, srtp_profile_t profile)
