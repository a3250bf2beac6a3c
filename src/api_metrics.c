/* api_metrics: GET /metrics, the Prometheus exposition (metrics_prom.c), on
 * the API listener (admin key as a bearer token, checked by api.c like a
 * /v1 route) and on the optional --metrics-listen listener, which serves
 * that one route without authentication and must be bound to a private
 * address. */
#include "api_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_conns.h"
#include "api_listen.h"
#include "log.h"
#include "metrics_prom.h"

/* The exposition (malloc'd) for a, or NULL if out of memory. */
static char *render(struct api *a, size_t *len)
{
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	const char *reasons[API_CONNS_N_REASONS];
	uint64_t refused[API_CONNS_N_REASONS];
	for (size_t i = 0; i < API_CONNS_N_REASONS; i++) {
		reasons[i] = api_conns_reason_name((enum api_conns_reason)i);
		refused[i] = api_conns_events(a->conns, (enum api_conns_reason)i);
	}
	struct store_size size;
	api_store_size(a, &size);
	struct metrics_prom_src src = {
		.m = a->cfg.metrics,
		.d = a->dispatch,
		.q = a->cfg.queue,
		.blocked = dispatch_endpoint_blocked,
		.n_routes = api_route_count(),
		.route_label = api_route_label,
		.open_connections = info != NULL ? (long)info->num_connections : -1,
		.n_conn_reasons = API_CONNS_N_REASONS,
		.conn_reasons = reasons,
		.conn_refused = refused,
		.store_size = &size,
	};
	return metrics_prom_render(&src, len);
}

void api_metrics(struct api_req *r)
{
	if (r->api->cfg.metrics == NULL) {
		api_error(r, MHD_HTTP_NOT_FOUND, "metrics_disabled", NULL,
			  "metrics are off (--metrics off)");
		return;
	}
	size_t len = 0;
	char *text = render(r->api, &len);
	if (text == NULL) {
		api_internal_error(r, "metrics exposition");
		return;
	}
	api_reply_text(r, MHD_HTTP_OK, text, len);
	r->ctype = METRICS_PROM_CONTENT_TYPE;
}

/* ---- the --metrics-listen server ---- */

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype,
			     char *body, size_t len)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET");
	enum MHD_Result ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result json_error(struct MHD_Connection *conn, unsigned status, const char *code,
				  const char *msg)
{
	char *body = NULL;
	if (asprintf(&body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\",\"field\":null}}",
		     code, msg) < 0)
		return MHD_NO;
	return reply(conn, status, "application/json", body, strlen(body));
}

/* Refuses query parameters as the main API's GET /metrics does (api_args_known: it takes none,
 * so any is a 400 naming it). False when the request has none and the scrape goes on; true when
 * it answered, with *ret the result of queueing the 400. */
static bool refuse_args(struct api *a, struct MHD_Connection *conn, enum MHD_Result *ret)
{
	struct api_req q = {.api = a, .conn = conn};
	if (api_args_known(&q, NULL) == 0)
		return false;
	char *body = q.resp != NULL ? json_dumps(q.resp, JSON_COMPACT) : NULL;
	json_decref(q.resp);
	free(q.text);
	*ret = body == NULL ? json_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
					 "out of memory")
			    : reply(conn, q.status, "application/json", body, strlen(body));
	return true;
}

static enum MHD_Result on_scrape(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload,
				 size_t *upload_size, void **con_cls)
{
	struct api *a = cls;
	(void)version;
	(void)upload;
	if (*con_cls == NULL) {
		*con_cls = a; /* headers seen; answer on the next call */
		return MHD_YES;
	}
	if (*upload_size > 0) {
		*upload_size = 0; /* a body is read and dropped */
		return MHD_YES;
	}
	if (strcmp(url, "/metrics") != 0)
		return json_error(conn, MHD_HTTP_NOT_FOUND, "not_found",
				  "this listener serves only GET /metrics");
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return json_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
				  "/metrics allows GET");
	enum MHD_Result ret;
	if (refuse_args(a, conn, &ret))
		return ret;
	size_t len = 0;
	char *text = render(a, &len);
	if (text == NULL)
		return json_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "out of memory");
	return reply(conn, MHD_HTTP_OK, METRICS_PROM_CONTENT_TYPE, text, len);
}

int api_metrics_listen_start(struct api *a, char *err, size_t errlen)
{
	struct sockaddr_storage addr;
	int fd = a->cfg.metrics_listen_fd; /* ours until libmicrohttpd has it */
	if (a->cfg.metrics == NULL) {
		snprintf(err, errlen, "--metrics-listen needs --metrics on");
		goto fail;
	}
	if (api_resolve_listen(a->cfg.metrics_listen, &addr, err, errlen) != 0 ||
	    (fd > 0 && api_listen_start(fd, a->cfg.metrics_listen, err, errlen) != 0))
		goto fail;
	/* MHD_USE_AUTO: epoll or poll, not select(), which cannot take the
	 * descriptors above 1024 a raised open-files limit hands out. */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
	if (addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* The socket serve bound (api_listen_bind), or the address to bind. */
	struct MHD_OptionItem listen_opts[] = {
		{MHD_OPTION_SOCK_ADDR, 0, &addr},
		{MHD_OPTION_END, 0, NULL},
	};
	if (fd > 0)
		listen_opts[0] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, fd, NULL};
	/* Small and slow-client safe: a scrape is one short request. */
	a->metrics_daemon = MHD_start_daemon(
		flags, 0, NULL, NULL, on_scrape, a, MHD_OPTION_ARRAY, listen_opts,
		MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_CONNECTION_LIMIT, 64u,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_END);
	if (a->metrics_daemon == NULL) {
		snprintf(err, errlen, "--metrics-listen %s: the address is in use or cannot be bound",
			 a->cfg.metrics_listen);
		return -1;
	}
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(a->metrics_daemon, MHD_DAEMON_INFO_BIND_PORT);
	a->metrics_port = info ? info->port : 0;
	log_info("metrics listening port=%u (GET /metrics without authentication)",
		 a->metrics_port);
	return 0;
fail:
	if (fd > 0)
		close(fd);
	return -1;
}

void api_metrics_listen_stop(struct api *a)
{
	if (a->metrics_daemon != NULL)
		MHD_stop_daemon(a->metrics_daemon);
	a->metrics_daemon = NULL;
}
