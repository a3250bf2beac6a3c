/* dispatch_share: the caches every sender's transfers share, private to
 * dispatch*.c.
 *
 * Why: each sender has its own libcurl multi handle, and with it its own
 * connection cache; libcurl keeps TLS sessions per easy handle and DNS
 * answers per multi handle unless they are shared. Shared, a connection
 * that any request handle or sender opens to a receiver another one has
 * talked to resumes that TLS session (an abbreviated handshake, no
 * certificate chain to send and verify) and needs no fresh lookup. The
 * share holds TLS sessions (CURL_LOCK_DATA_SSL_SESSION) and DNS answers
 * (CURL_LOCK_DATA_DNS), each under a mutex of its own; connections are not
 * shared (libcurl does not support sharing connections between concurrent
 * threads, and each sender's own cache needs no lock).
 * The address guard still judges every socket (dispatch_net.c), so a cached
 * answer decides nothing on its own. */
#ifndef HOOKD_DISPATCH_SHARE_H
#define HOOKD_DISPATCH_SHARE_H

#include <curl/curl.h>

struct dispatch_share;

/* A new share with its locks; NULL if out of memory or libcurl refused it. */
struct dispatch_share *dispatch_share_new(void);

/* The share's handle, for CURLOPT_SHARE on every easy handle that uses it. */
CURLSH *dispatch_share_handle(const struct dispatch_share *s);

/* Frees s (NULL is fine). Every easy handle set to use it must have been
 * cleaned up first. */
void dispatch_share_free(struct dispatch_share *s);

#endif
