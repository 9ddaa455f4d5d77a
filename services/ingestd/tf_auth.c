/*  Who may connect and who may write.

    With --curve-secret every socket is a CURVE server. zauth (ZAP) admits
    a client during the handshake: any valid key, or only those in the
    --readers directory when it is set (that list must then hold the
    writers' keys too, since it governs every socket). Writing is a
    second check per ingest request: the client's key, which zauth puts in
    the "User-Id" property of each frame, must be in the --writers
    directory. Both directories are zcertstores that reload themselves
    when their files change, so keys are added and removed without a
    restart.

    Without CURVE the service refuses to listen beyond loopback unless
    told --insecure.
*/
#include "tf_log.h"
#include "tf_server_int.h"

/*  True for endpoints only this machine can reach. */
static bool s_is_local_endpoint (const char *endpoint)
{
    if (strncmp (endpoint, "ipc://", 6) == 0 || strncmp (endpoint, "inproc://", 9) == 0)
        return true;
    const char *host = strncmp (endpoint, "tcp://", 6) == 0 ? endpoint + 6 : NULL;
    if (!host)
        return false;
    return strncmp (host, "127.", 4) == 0 || strncmp (host, "localhost:", 10) == 0 ||
           strncmp (host, "[::1]:", 6) == 0;
}

static bool s_all_local (const char *endpoints)
{
    char *list = strdup (endpoints);
    char *save = NULL;
    bool local = true;
    for (char *ep = strtok_r (list, ",", &save); ep && local; ep = strtok_r (NULL, ",", &save))
        local = s_is_local_endpoint (ep);
    free (list);
    return local;
}

int tf_auth_check_exposure (const tf_server_config_t *config)
{
    if (config->curve_secret && *config->curve_secret)
        return 0;
    bool local =
        s_all_local (config->ingest) && s_all_local (config->events) && s_all_local (config->sync);
    if (local)
        return 0;
    if (config->insecure) {
        tf_warn ("listening beyond loopback WITHOUT encryption or authentication (--insecure): "
                 "anyone who reaches these ports can read and write");
        return 0;
    }
    tf_error ("refusing to listen beyond loopback without CURVE: give --curve-secret and "
              "--writers (see 'techfeed keygen'), or --insecure to accept the risk");
    return -1;
}

static bool s_is_dir (const char *path)
{
    struct stat st;
    return path && stat (path, &st) == 0 && S_ISDIR (st.st_mode);
}

int tf_auth_start (tf_server_t *self)
{
    const tf_server_config_t *config = self->config;
    if (!config->curve_secret || !*config->curve_secret)
        return 0;
    zcert_t *cert = zcert_load (config->curve_secret);
    if (!cert) {
        tf_error ("--curve-secret %s: not a readable CZMQ certificate (make one with "
                  "'techfeed keygen')",
                  config->curve_secret);
        return -1;
    }
    if (!s_is_dir (config->writers)) {
        tf_error ("--writers %s: not a directory of public certificates",
                  config->writers ? config->writers : "(unset)");
        zcert_destroy (&cert);
        return -1;
    }
    if (config->readers && *config->readers && !s_is_dir (config->readers)) {
        tf_error ("--readers %s: not a directory of public certificates", config->readers);
        zcert_destroy (&cert);
        return -1;
    }
    self->auth = zactor_new (zauth, NULL);
    if (config->readers && *config->readers)
        zstr_sendx (self->auth, "CURVE", config->readers, NULL);
    else
        zstr_sendx (self->auth, "CURVE", CURVE_ALLOW_ANY, NULL);
    zsock_wait (self->auth);
    self->writers = zcertstore_new (config->writers);
    zsock_t *sockets[] = { self->ingest, self->events, self->sync };
    for (int i = 0; i < 3; i++) {
        zcert_apply (cert, sockets[i]);
        zsock_set_curve_server (sockets[i], 1);
        zsock_set_zap_domain (sockets[i], "techfeed");
    }
    tf_info ("CURVE on: server key %s, writers from %s, readers %s", zcert_public_txt (cert),
             config->writers,
             config->readers && *config->readers ? config->readers : "any valid key");
    zcert_destroy (&cert);
    return 0;
}

void tf_auth_stop (tf_server_t *self)
{
    zcertstore_destroy (&self->writers);
    zactor_destroy (&self->auth);
}

bool tf_auth_may_write (tf_server_t *self, zframe_t *frame, char *why, size_t whylen)
{
    if (!self->writers)
        return true;
    const char *key = zframe_meta (frame, "User-Id");
    if (key && zcertstore_lookup (self->writers, key))
        return true;
    snprintf (why, whylen, "key %.40s is not allowed to write (not in the writers' directory)",
              key ? key : "(none)");
    return false;
}
