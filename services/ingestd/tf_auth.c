/*  Who may connect and who may write.

    With --curve-secret every socket is a CURVE server, and this file is
    its ZAP handler (ZeroMQ RFC 27), served by the server thread itself.
    CZMQ's zauth cannot be used: with "any key may read" it admits clients
    without telling who they are, and the write check needs to know. The
    policy: a key in the --writers directory is admitted and may write; a
    key in the --readers directory is admitted and may only read; when
    --readers is unset, any key is admitted to read. Every admitted
    connection carries its key as the ZAP user id, which the ingest path
    reads per request ("User-Id" of each frame). Both directories are
    zcertstores that reload themselves when their files change, so keys
    are added and removed without a restart.

    Without CURVE the service refuses to listen beyond loopback unless
    told --insecure.
*/
#include "tf_log.h"
#include "tf_server_int.h"

#define TF_WRITER_RECHECK_MS 1000

/*  True for endpoints only this machine can reach. */
static bool s_is_local_endpoint (const char *endpoint)
{
    if (strncmp (endpoint, "ipc://", 6) == 0 || strncmp (endpoint, "inproc://", 9) == 0)
        return true;
    const char *host = strncmp (endpoint, "tcp://", 6) == 0 ? endpoint + 6 : NULL;
    if (!host)
        return false;
    return strncmp (host, "127.", 4) == 0 || strncmp (host, "localhost:", 10) == 0 ||
           strncmp (host, "[::1]:", 6) == 0 || strncmp (host, "[::ffff:127.", 12) == 0;
}

static bool s_is_exposed_endpoint (const char *endpoint)
{
    return !s_is_local_endpoint (endpoint);
}

/*  The first endpoint of the comma-separated `endpoints` that others can
    reach, copied into `out`; false when every one is local. */
static bool s_exposed (const char *endpoints, char *out, size_t outlen)
{
    return tf_endpoint_find (endpoints, s_is_exposed_endpoint, out, outlen);
}

static bool s_is_set (const char *value)
{
    return value && *value;
}

static bool s_is_dir (const char *path)
{
    struct stat st;
    return path && stat (path, &st) == 0 && S_ISDIR (st.st_mode);
}

/*  Without CURVE: no key directories (they would admit everyone), and
    loopback only unless --insecure. */
static int s_check_plain (const tf_server_config_t *config, char *err, size_t errlen)
{
    const char *dirs[][2] = { { "--writers (TECHFEED_WRITERS)", config->writers },
                              { "--readers (TECHFEED_READERS)", config->readers } };
    for (size_t i = 0; i < 2; i++)
        if (s_is_set (dirs[i][1])) {
            snprintf (err, errlen,
                      "%s: %s is set, but CURVE is off: without --curve-secret "
                      "(TECHFEED_CURVE_SECRET) any client may connect and write",
                      dirs[i][0], dirs[i][1]);
            return -1;
        }
    const char *sockets[][2] = { { "--ingest (TECHFEED_INGEST)", config->ingest },
                                 { "--events (TECHFEED_EVENTS)", config->events },
                                 { "--sync (TECHFEED_SYNC)", config->sync } };
    char endpoint[256];
    for (size_t i = 0; i < 3 && !config->insecure; i++)
        if (s_exposed (sockets[i][1], endpoint, sizeof endpoint)) {
            snprintf (err, errlen,
                      "%s: %s: refusing to listen beyond loopback without CURVE: give "
                      "--curve-secret and --writers (see 'techfeed keygen'), or --insecure to "
                      "accept the risk",
                      sockets[i][0], endpoint);
            return -1;
        }
    return 0;
}

int tf_auth_check_config (const tf_server_config_t *config, char *err, size_t errlen)
{
    if (!s_is_set (config->curve_secret))
        return s_check_plain (config, err, errlen);
    zcert_t *cert = zcert_load (config->curve_secret);
    if (!cert) {
        snprintf (err, errlen,
                  "--curve-secret (TECHFEED_CURVE_SECRET): %s: not a readable CZMQ certificate "
                  "(make one with 'techfeed keygen')",
                  config->curve_secret);
        return -1;
    }
    zcert_destroy (&cert);
    if (!s_is_dir (config->writers)) {
        snprintf (err, errlen,
                  "--writers (TECHFEED_WRITERS): %s: not a directory of public certificates "
                  "(CURVE needs the keys allowed to write)",
                  s_is_set (config->writers) ? config->writers : "unset");
        return -1;
    }
    if (s_is_set (config->readers) && !s_is_dir (config->readers)) {
        snprintf (err, errlen,
                  "--readers (TECHFEED_READERS): %s: not a directory of public certificates",
                  config->readers);
        return -1;
    }
    return 0;
}

void tf_auth_warn_exposure (const tf_server_config_t *config)
{
    char endpoint[256];
    if (s_is_set (config->curve_secret) || !config->insecure)
        return;
    if (s_exposed (config->ingest, endpoint, sizeof endpoint) ||
        s_exposed (config->events, endpoint, sizeof endpoint) ||
        s_exposed (config->sync, endpoint, sizeof endpoint))
        tf_warn ("listening beyond loopback WITHOUT encryption or authentication (--insecure): "
                 "anyone who reaches these ports can read and write");
}

/*  ZAP request (RFC 27), CURVE:
    +---------+------------+--------+---------+----------+-----------+-----------+
    | "1.0"   | request id | domain | address | identity | "CURVE"   | key (32B) |
    +---------+------------+--------+---------+----------+-----------+-----------+
    reply: "1.0", request id, status code, status text, user id, metadata. */
static void s_zap_answer (zsock_t *zap, zcertstore_t *writers, zcertstore_t *readers)
{
    zmsg_t *request = zmsg_recv (zap);
    if (!request)
        return;
    char *version = zmsg_popstr (request);
    char *request_id = zmsg_popstr (request);
    char *domain = zmsg_popstr (request);
    char *address = zmsg_popstr (request);
    char *identity = zmsg_popstr (request);
    char *mechanism = zmsg_popstr (request);
    zframe_t *key = zmsg_pop (request);
    char client[41] = "";
    const char *status = "400", *text = "only CURVE clients are admitted";
    if (mechanism && streq (mechanism, "CURVE") && key && zframe_size (key) == 32) {
        zmq_z85_encode (client, zframe_data (key), 32);
        bool writer = zcertstore_lookup (writers, client) != NULL;
        bool reader = !readers || zcertstore_lookup (readers, client) != NULL;
        if (writer || reader)
            status = "200", text = writer ? "writer" : "reader";
        else
            text = "key not in the readers' or writers' directory";
    }
    if (*status != '2')
        tf_info ("refused connection from %s: %s%s%s", address ? address : "?", text,
                 *client ? ", key " : "", client);
    else
        tf_debug ("admitted %s %s from %s (domain %s)", text, client, address ? address : "?",
                  domain ? domain : "");
    zmsg_t *reply = zmsg_new ();
    zmsg_addstr (reply, "1.0");
    zmsg_addstr (reply, request_id ? request_id : "");
    zmsg_addstr (reply, status);
    zmsg_addstr (reply, text);
    zmsg_addstr (reply, *status == '2' ? client : "");
    zmsg_addmem (reply, NULL, 0);
    zmsg_send (&reply, zap);
    zframe_destroy (&key);
    zstr_free (&version);
    zstr_free (&request_id);
    zstr_free (&domain);
    zstr_free (&address);
    zstr_free (&identity);
    zstr_free (&mechanism);
    zmsg_destroy (&request);
}

/*  The ZAP handler runs on a thread of its own, like CZMQ's zauth: a
    handshake must not wait for a group commit. It has its own certificate
    stores (a zcertstore belongs to one thread). */
static void s_zap_actor (zsock_t *pipe, void *args)
{
    const tf_server_config_t *config = (const tf_server_config_t *) args;
    zsock_t *zap = zsock_new_rep ("inproc://zeromq.zap.01");
    zsock_signal (pipe, 0);           /* zactor_new waits for this one */
    zsock_signal (pipe, zap ? 0 : 1); /* tf_auth_start for this one */
    if (!zap)
        return;
    zcertstore_t *writers = zcertstore_new (config->writers);
    zcertstore_t *readers = s_is_set (config->readers) ? zcertstore_new (config->readers) : NULL;
    zpoller_t *poller = zpoller_new (pipe, zap, NULL);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which == zap)
            s_zap_answer (zap, writers, readers);
        else if (which == pipe) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            zstr_free (&command);
            if (term)
                break;
        } else if (zpoller_terminated (poller))
            break;
    }
    zpoller_destroy (&poller);
    zcertstore_destroy (&writers);
    zcertstore_destroy (&readers);
    zsock_destroy (&zap);
}

int tf_auth_start (tf_server_t *self)
{
    const tf_server_config_t *config = self->config;
    if (!s_is_set (config->curve_secret))
        return 0;
    //  tf_auth_check_config read it before; it may have gone since
    zcert_t *cert = zcert_load (config->curve_secret);
    if (!cert) {
        tf_error ("--curve-secret %s: cannot read the certificate", config->curve_secret);
        return -1;
    }
    self->writers = zcertstore_new (config->writers);
    self->writers_seen = zhashx_new ();
    self->zap = zactor_new (s_zap_actor, (void *) config);
    if (zsock_wait (self->zap) != 0) {
        tf_error ("cannot bind the ZAP handler (another one runs in this process)");
        zcert_destroy (&cert);
        return -1;
    }
    zsock_t *sockets[] = { self->ingest, self->events, self->sync };
    for (int i = 0; i < 3; i++) {
        zcert_apply (cert, sockets[i]);
        zsock_set_curve_server (sockets[i], 1);
        zsock_set_zap_domain (sockets[i], "techfeed");
    }
    tf_info ("CURVE on: server key %s, writers from %s, readers %s", zcert_public_txt (cert),
             config->writers, s_is_set (config->readers) ? config->readers : "any valid key");
    zcert_destroy (&cert);
    return 0;
}

void tf_auth_stop (tf_server_t *self)
{
    zactor_destroy (&self->zap);
    zcertstore_destroy (&self->writers);
    zhashx_destroy (&self->writers_seen);
}

bool tf_auth_may_write (tf_server_t *self, const char *key, char *why, size_t whylen)
{
    if (!self->writers)
        return true;
    if (key) {
        //  zcertstore_lookup rereads the directory on every call: confirm a
        //  writer at most once a second (a removed key stops within that).
        int64_t now = tf_now_ms ();
        intptr_t confirmed = (intptr_t) zhashx_lookup (self->writers_seen, key);
        if (confirmed && now - confirmed < TF_WRITER_RECHECK_MS)
            return true;
        if (zcertstore_lookup (self->writers, key)) {
            zhashx_update (self->writers_seen, key, (void *) (intptr_t) now);
            return true;
        }
        zhashx_delete (self->writers_seen, key);
    }
    snprintf (why, whylen, "key %.40s is not allowed to write (not in the writers' directory)",
              key ? key : "(none)");
    return false;
}
