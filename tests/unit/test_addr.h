/* Test helper shared by the cidr and netguard unit tests: a socket address
 * from its text form (inet_pton, IPv4 or IPv6). */
#ifndef HOOKD_TEST_ADDR_H
#define HOOKD_TEST_ADDR_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

/* Fills ss from text; returns a pointer to it, or NULL if text is no address. */
static inline const struct sockaddr *test_addr(const char *text, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(443);
		return (const struct sockaddr *)ss;
	}
	if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(443);
		return (const struct sockaddr *)ss;
	}
	return NULL;
}

#endif
