/* api_listen: binding the API's sockets before anything else starts
 * (api_listen.c). */
#ifndef HOOKD_API_LISTEN_H
#define HOOKD_API_LISTEN_H

#include <stddef.h>

/* Binds a socket to listen ("HOST:PORT"; flag names it in messages, e.g.
 * "--listen") without listening yet, so connections are refused until the
 * API runs. Returns 0 and the socket in *fd (always above 2; the caller owns
 * it until it hands it to api_start), or -1 with a one-line reason that says
 * what to fix in err (*fd is then -1). */
int api_listen_bind(const char *listen, const char *flag, int *fd, char *err, size_t errlen);

/* Starts listening on fd, bound by api_listen_bind (where names it in the
 * message). Returns 0, or -1 with a reason in err. */
int api_listen_start(int fd, const char *where, char *err, size_t errlen);

#endif
