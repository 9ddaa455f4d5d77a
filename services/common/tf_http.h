/*  tf_http — a small HTTP/1.1 endpoint (libmicrohttpd) for health checks
    and metrics. Requests are served on libmicrohttpd's own thread: the
    handler must only read thread-safe state (atomics), never the
    database or the ZeroMQ sockets.
*/
#ifndef TF_HTTP_H_INCLUDED
#define TF_HTTP_H_INCLUDED

#include <stddef.h>

typedef struct _tf_http_t tf_http_t;

/*  Returns the body for `path` (malloc'd, caller of the callback frees
    nothing: tf_http frees it) and sets *status and *content_type; NULL
    body means 404. Only GET and HEAD reach it. */
typedef char *(tf_http_handler_fn) (const char *path, int *status, const char **content_type,
                                    void *arg);

/*  Listens on "HOST:PORT" (IPv4 or [IPv6]; port 0 picks one). NULL with
    a message in err when the address is bad or cannot be bound. */
tf_http_t *tf_http_new (const char *address, tf_http_handler_fn *handler, void *arg, char *err,
                        size_t errlen);
/*  0 when `address` is a HOST:PORT tf_http_new takes, else -1 with why
    in err (binding is not tried). */
int tf_http_check_address (const char *address, char *err, size_t errlen);
void tf_http_destroy (tf_http_t **self_p);
/*  The port actually bound. */
int tf_http_port (tf_http_t *self);

#endif
