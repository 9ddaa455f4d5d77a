/*  tf_http — see tf_http.h. */
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>

#include "tf_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _tf_http_t {
    struct MHD_Daemon *daemon; /* libmicrohttpd, one internal thread */
    tf_http_handler_fn *handler;
    void *arg; /* handler's argument */
    int port;  /* bound port */
};

static enum MHD_Result s_answer (void *cls, struct MHD_Connection *connection, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **state)
{
    tf_http_t *self = (tf_http_t *) cls;
    int status = MHD_HTTP_OK;
    const char *type = "text/plain; charset=utf-8";
    char *body = NULL;
    if (strcmp (method, "GET") != 0 && strcmp (method, "HEAD") != 0) {
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
        body = strdup ("only GET and HEAD\n");
    } else {
        body = self->handler (url, &status, &type, self->arg);
        if (!body) {
            status = MHD_HTTP_NOT_FOUND;
            body = strdup ("not found: try /healthz, /readyz or /metrics\n");
        }
    }
    if (!body)
        abort ();
    struct MHD_Response *response =
        MHD_create_response_from_buffer (strlen (body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header (response, "Content-Type", type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header (response, "Allow", "GET, HEAD"); // RFC 9110 wants it
    enum MHD_Result rc = MHD_queue_response (connection, (unsigned) status, response);
    MHD_destroy_response (response);
    return rc;
}

/*  "127.0.0.1:8080", "[::1]:8080", ":8080" (all IPv4 interfaces). */
static int s_parse_address (const char *address, struct sockaddr_storage *out, socklen_t *len)
{
    char host[128];
    const char *colon = strrchr (address, ':');
    if (!colon || colon - address >= (long) sizeof host)
        return -1;
    char *end;
    long port = strtol (colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535)
        return -1;
    memcpy (host, address, (size_t) (colon - address));
    host[colon - address] = 0;
    memset (out, 0, sizeof *out);
    if (host[0] == '[') {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) out;
        size_t n = strlen (host);
        if (n < 3 || host[n - 1] != ']')
            return -1;
        host[n - 1] = 0;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons ((uint16_t) port);
        *len = sizeof *in6;
        return inet_pton (AF_INET6, host + 1, &in6->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *in4 = (struct sockaddr_in *) out;
    in4->sin_family = AF_INET;
    in4->sin_port = htons ((uint16_t) port);
    *len = sizeof *in4;
    if (!host[0])
        return in4->sin_addr.s_addr = htonl (INADDR_ANY), 0;
    return inet_pton (AF_INET, host, &in4->sin_addr) == 1 ? 0 : -1;
}

/*  s_parse_address, with the reason in err when it fails. */
static int s_parse_or_say (const char *address, struct sockaddr_storage *out, socklen_t *len,
                           char *err, size_t errlen)
{
    if (s_parse_address (address, out, len) == 0)
        return 0;
    snprintf (err, errlen, "'%s' is not HOST:PORT (e.g. 127.0.0.1:8080 or [::1]:8080)", address);
    return -1;
}

int tf_http_check_address (const char *address, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    socklen_t len;
    return s_parse_or_say (address, &addr, &len, err, errlen);
}

tf_http_t *tf_http_new (const char *address, tf_http_handler_fn *handler, void *arg, char *err,
                        size_t errlen)
{
    struct sockaddr_storage addr;
    socklen_t len;
    if (s_parse_or_say (address, &addr, &len, err, errlen))
        return NULL;
    tf_http_t *self = (tf_http_t *) calloc (1, sizeof *self);
    if (!self)
        abort ();
    self->handler = handler;
    self->arg = arg;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    self->daemon =
        MHD_start_daemon (flags, 0, NULL, NULL, s_answer, self, MHD_OPTION_SOCK_ADDR,
                          (struct sockaddr *) &addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned) 64,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 10, MHD_OPTION_END);
    if (!self->daemon) {
        snprintf (err, errlen, "cannot listen for HTTP on %s", address);
        free (self);
        return NULL;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info (self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? info->port : 0;
    return self;
}

void tf_http_destroy (tf_http_t **self_p)
{
    if (*self_p) {
        MHD_stop_daemon ((*self_p)->daemon);
        free (*self_p);
        *self_p = NULL;
    }
}

int tf_http_port (tf_http_t *self)
{
    return self->port;
}
