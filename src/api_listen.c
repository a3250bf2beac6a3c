/* api_listen: the API's listening sockets, bound before start-up creates
 * anything (docs/operations.md#start-up-checks). serve binds --listen and
 * --metrics-listen first, so a port in use is refused before a database or
 * a key file exists; api_start then listens on them and hands them to
 * libmicrohttpd (MHD_OPTION_LISTEN_SOCKET). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api_listen.h"

#include "api_internal.h"

#define LISTEN_BACKLOG 1024

/* What to do about a bind error, for the one-line refusal. */
static const char *bind_fix(int e)
{
	switch (e) {
	case EADDRINUSE:
		return "another program listens there: stop it or choose another port";
	case EADDRNOTAVAIL:
		return "no interface of this machine has that address: use one it has, "
		       "or 0.0.0.0";
	case EACCES:
		return "ports below 1024 need root or CAP_NET_BIND_SERVICE: use a port "
		       "above 1023";
	default:
		return "choose another address";
	}
}

int api_listen_bind(const char *listen, const char *flag, int *fd, char *err, size_t errlen)
{
	struct sockaddr_storage addr;
	int one = 1;
	*fd = -1;
	if (api_resolve_listen(listen, &addr, err, errlen) != 0)
		return -1;
	socklen_t len = addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						   : sizeof(struct sockaddr_in);
	int s = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0) {
		snprintf(err, errlen, "%s %s: cannot make a socket: %s", flag, listen,
			 strerror(errno));
		return -1;
	}
	/* Never 0..2 (possible when hookd was started with them closed): 0
	 * means "no socket" in struct api_config. */
	if (s <= 2) {
		int moved = fcntl(s, F_DUPFD_CLOEXEC, 3);
		close(s);
		if (moved < 0) {
			snprintf(err, errlen, "%s %s: cannot make a socket: %s", flag, listen,
				 strerror(errno));
			return -1;
		}
		s = moved;
	}
	/* As libmicrohttpd sets them when it binds: a restart need not wait
	 * for TIME_WAIT, and an IPv6 address means only IPv6. */
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (addr.ss_family == AF_INET6)
		setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(s, (struct sockaddr *)&addr, len) != 0) {
		int e = errno;
		snprintf(err, errlen, "cannot listen on %s (%s): %s: %s", listen, flag, strerror(e),
			 bind_fix(e));
		close(s);
		return -1;
	}
	*fd = s;
	return 0;
}

int api_listen_start(int fd, const char *where, char *err, size_t errlen)
{
	if (listen(fd, LISTEN_BACKLOG) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", where, strerror(errno));
		return -1;
	}
	return 0;
}
