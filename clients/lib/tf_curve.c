/*  tf_curve — see tf_curve.h. */
#include "tf_curve.h"

#define TF_Z85_KEY 40 /* a 32-byte key in Z85 */

struct _tf_curve_t {
    zcert_t *cert;                   /* the client's key pair */
    char server_key[TF_Z85_KEY + 1]; /* the service's public key, Z85 */
};

/*  True when all `size` bytes are zero (a certificate without that key). */
static bool s_zero (const byte *key, size_t size)
{
    for (size_t i = 0; i < size; i++)
        if (key[i])
            return false;
    return true;
}

/*  True for 40 characters that decode as Z85. */
static bool s_z85_key (const char *text)
{
    uint8_t key[32];
    return strlen (text) == TF_Z85_KEY && zmq_z85_decode (key, text) != NULL;
}

tf_curve_t *tf_curve_new (const char *server_key, const char *client_cert, char *err, size_t errlen)
{
    assert (server_key);
    char key[TF_Z85_KEY + 1] = "";
    if (s_z85_key (server_key))
        snprintf (key, sizeof key, "%s", server_key);
    else {
        zcert_t *server = zcert_load (server_key);
        if (!server || s_zero (zcert_public_key (server), 32)) {
            snprintf (err, errlen,
                      "server key '%.200s' is neither a Z85 key (40 characters) nor a readable "
                      "certificate file",
                      server_key);
            zcert_destroy (&server);
            return NULL;
        }
        snprintf (key, sizeof key, "%s", zcert_public_txt (server));
        zcert_destroy (&server);
    }
    zcert_t *cert = NULL;
    if (!client_cert)
        cert = zcert_new ();
    else {
        cert = zcert_load (client_cert);
        if (!cert) {
            snprintf (err, errlen, "client certificate %.200s: not a readable certificate file",
                      client_cert);
            return NULL;
        }
        if (s_zero (zcert_secret_key (cert), 32)) {
            snprintf (err, errlen,
                      "client certificate %.200s has no secret key (give the NAME.key_secret "
                      "file that 'techfeed keygen' wrote)",
                      client_cert);
            zcert_destroy (&cert);
            return NULL;
        }
    }
    if (!cert)
        abort ();
    tf_curve_t *self = (tf_curve_t *) zmalloc (sizeof (tf_curve_t));
    self->cert = cert;
    snprintf (self->server_key, sizeof self->server_key, "%s", key);
    return self;
}

void tf_curve_destroy (tf_curve_t **self_p)
{
    assert (self_p);
    tf_curve_t *self = *self_p;
    if (!self)
        return;
    zcert_destroy (&self->cert);
    free (self);
    *self_p = NULL;
}

int tf_curve_replace (tf_curve_t **slot, const char *server_key, const char *client_cert, char *err,
                      size_t errlen)
{
    tf_curve_t *curve = tf_curve_new (server_key, client_cert, err, errlen);
    if (!curve)
        return -1;
    tf_curve_destroy (slot);
    *slot = curve;
    return 0;
}

void tf_curve_apply (const tf_curve_t *self, zsock_t *socket)
{
    zcert_apply (self->cert, socket);
    zsock_set_curve_serverkey (socket, self->server_key);
}

const char *tf_curve_client_key (const tf_curve_t *self)
{
    return zcert_public_txt (self->cert);
}
