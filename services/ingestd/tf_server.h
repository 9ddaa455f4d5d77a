/*  tf_server — techfeed-ingestd's engine: one thread that owns the database
    and the three sockets (ingest ROUTER, events PUB, sync ROUTER).

    Run it in the calling thread with tf_server_run (the program) or as a
    CZMQ actor (tests): zactor_new (tf_server_actor, &config) binds, sends
    a signal 0 when ready (-1 on failure) and stops on "$TERM".
*/
#ifndef TF_SERVER_H_INCLUDED
#define TF_SERVER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    char *data_dir;          /* holds techfeed.db unless db is set */
    char *db;                /* database file path */
    char *ingest;            /* ROUTER endpoint(s), comma-separated */
    char *events;            /* PUB endpoint(s) */
    char *sync;              /* ROUTER endpoint(s) */
    char *endpoints_file;    /* where bound endpoints are written, or NULL */
    int64_t heartbeat_ms;    /* heartbeat interval */
    int64_t max_frame;       /* ZMQ_MAXMSGSIZE of the ROUTER sockets, bytes */
    int64_t max_ops;         /* operations per IngestRequest */
    int64_t group_max;       /* requests committed in one transaction */
    int64_t pub_hwm;         /* PUB send high-water mark, messages */
    int64_t idempotency_ms;  /* how long request ids are remembered */
    int64_t idempotency_max; /* request ids remembered at most */
    int64_t apply_max;       /* changes copied into records per transaction */
    int64_t apply_lag_max;   /* records may be this far behind before writes wait, 0 = no bound */
    int64_t wal_reserve;     /* WAL written ahead at start, MiB, 0 = none */
    int64_t log_keep;        /* changes kept in the log, 0 = no count bound */
    int64_t log_max_age_ms;  /* changes older than this are trimmed, 0 = none */
    int64_t maintenance_ms;  /* how often the log is trimmed and request ids expire */
    int64_t chunk_max;       /* records per sync reply, upper bound */
    int64_t cursor_idle_ms;  /* idle cursors are closed after this */
    int64_t max_cursors;     /* open snapshot/catch-up cursors */
    int64_t peer_timeout_ms; /* ZMTP heartbeats: a silent peer is dropped after this, 0 = never */
    char *curve_secret;      /* the service's secret certificate file (enables CURVE) */
    char *writers;           /* directory of public certificates allowed to write */
    char *readers;           /* directory of keys allowed to connect, NULL = any valid key */
    bool insecure;           /* allow plain TCP on non-loopback addresses */
    char *http_addr;         /* HOST:PORT for /healthz, /readyz, /metrics, or NULL */
    char *log_level;
    char *log_format;
} tf_server_config_t;

/*  0 when the settings can be used as far as can be told without opening
    the database or binding: the CURVE files, where the sockets listen,
    the HTTP address. Else -1 with why in err, naming the setting. */
int tf_server_check_config (const tf_server_config_t *config, char *err, size_t errlen);

/*  Binds, serves until zsys_interrupted, closes. 0 on a clean stop, -1
    when start-up failed (the reason is logged). */
int tf_server_run (const tf_server_config_t *config);

/*  CZMQ actor form of the same, for tests. `args` is a tf_server_config_t *
    that must outlive the actor. */
void tf_server_actor (zsock_t *pipe, void *args);

#endif
