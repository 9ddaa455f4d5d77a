/*  tf_curve — a client's CURVE settings (PROTOCOL.md §12), private to
    libtechfeed: the service's public key and the client's certificate,
    applied to every socket a handle makes (each fresh socket of a Lazy
    Pirate retry included) before it connects.
*/
#ifndef TF_CURVE_H_INCLUDED
#define TF_CURVE_H_INCLUDED

#include <czmq.h>
#include <stddef.h>

typedef struct _tf_curve_t tf_curve_t;

/*  `server_key`: the service's public key, 40 Z85 characters, or the path
    of a certificate file holding it (its public file from `techfeed
    keygen`). `client_cert`: the path of the client's certificate with its
    secret key (NAME.key_secret, or NAME.key when NAME.key_secret lies
    beside it, as zcert_load reads them); NULL: a key pair made here, good
    for reading from a service that admits any key. NULL with the reason
    in err when a key is not valid or a file holds no usable certificate;
    the reason starts with "server key" or "client certificate" (the CLI
    names the setting by it). */
tf_curve_t *tf_curve_new (const char *server_key, const char *client_cert, char *err,
                          size_t errlen);
void tf_curve_destroy (tf_curve_t **self_p);

/*  tf_curve_new into *slot, replacing what it held. 0, or -1 with the
    reason in err and *slot unchanged. */
int tf_curve_replace (tf_curve_t **slot, const char *server_key, const char *client_cert, char *err,
                      size_t errlen);

/*  Makes `socket` a CURVE client of the service (before it connects). */
void tf_curve_apply (const tf_curve_t *self, zsock_t *socket);

/*  The client's public key, Z85 (for messages). */
const char *tf_curve_client_key (const tf_curve_t *self);

#endif
