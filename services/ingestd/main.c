/*  techfeed-ingestd — the techfeed service. Settings and start-up only;
    the work is in tf_server.c. */
#include "tf_config.h"
#include "tf_log.h"
#include "tf_server.h"

#include <signal.h>
#include <stddef.h>
#include <sysexits.h>
#include <unistd.h>

#define S(field) offsetof (tf_server_config_t, field)
#define DAY_MS "86400000"

static const tf_cfg_option_t s_options[] = {
    { "data-dir", 'd', TF_CFG_STRING, "./data", 0, 0, false, S (data_dir),
      "directory of the database (created if missing)" },
    { "db", 0, TF_CFG_STRING, NULL, 0, 0, false, S (db),
      "database file; overrides DATA_DIR/techfeed.db" },
    { "ingest", 0, TF_CFG_STRING, "tcp://127.0.0.1:5560", 0, 0, false, S (ingest),
      "ingest ROUTER endpoint(s), comma-separated" },
    { "events", 0, TF_CFG_STRING, "tcp://127.0.0.1:5561", 0, 0, false, S (events),
      "events PUB endpoint(s)" },
    { "sync", 0, TF_CFG_STRING, "tcp://127.0.0.1:5562", 0, 0, false, S (sync),
      "sync ROUTER endpoint(s)" },
    { "endpoints-file", 0, TF_CFG_STRING, NULL, 0, 0, false, S (endpoints_file),
      "write the bound endpoints here (for ports bound as *)" },
    { "heartbeat-ms", 0, TF_CFG_INT, "1000", 50, 60000, false, S (heartbeat_ms),
      "heartbeat interval" },
    { "max-frame", 0, TF_CFG_INT, "4194304", 1024, 268435456, false, S (max_frame),
      "largest request frame accepted, bytes (larger ones drop the connection)" },
    { "max-ops", 0, TF_CFG_INT, "1000", 1, 100000, false, S (max_ops),
      "operations per ingest request" },
    { "group-max", 0, TF_CFG_INT, "256", 1, 65536, false, S (group_max),
      "requests committed together in one transaction" },
    { "pub-hwm", 0, TF_CFG_INT, "100000", 1, 10000000, false, S (pub_hwm),
      "events queued per subscriber before it loses some (and repairs)" },
    { "idempotency-ms", 0, TF_CFG_INT, DAY_MS, 1000, 31536000000, false, S (idempotency_ms),
      "how long a request id is remembered at least (a write group's ids go together)" },
    { "idempotency-max", 0, TF_CFG_INT, "1000000", 1000, 1000000000, false, S (idempotency_max),
      "request ids remembered at most, plus one write group's (the oldest are forgotten first)" },
    { "apply-max", 0, TF_CFG_INT, "512", 1, 1000000, false, S (apply_max),
      "changes copied from the log into the records table per transaction" },
    { "apply-lag-max", 0, TF_CFG_INT, "10000", 0, 100000000, false, S (apply_lag_max),
      "changes the records table may be behind the log before writes wait for it (0: no bound)" },
    { "wal-reserve", 0, TF_CFG_INT, "36", 0, 64, false, S (wal_reserve),
      "MiB of WAL written ahead at start, so commits need not grow the file (0: none)" },
    { "log-keep", 0, TF_CFG_INT, "0", 0, INT64_MAX, false, S (log_keep),
      "changes kept in the log for catch-up (0: no count bound)" },
    { "log-max-age-ms", 0, TF_CFG_INT, "0", 0, INT64_MAX, false, S (log_max_age_ms),
      "changes older than this are trimmed (0: never)" },
    { "maintenance-ms", 0, TF_CFG_INT, "60000", 10, 86400000, false, S (maintenance_ms),
      "how often the log is trimmed and old request ids forgotten" },
    { "chunk-max", 0, TF_CFG_INT, "5000", 1, 100000, false, S (chunk_max),
      "records per snapshot/catch-up reply, at most" },
    { "cursor-idle-ms", 0, TF_CFG_INT, "30000", 100, 3600000, false, S (cursor_idle_ms),
      "an idle snapshot/catch-up cursor is closed after this" },
    { "max-cursors", 0, TF_CFG_INT, "64", 1, 10000, false, S (max_cursors),
      "snapshot/catch-up cursors open at once" },
    { "peer-timeout-ms", 0, TF_CFG_INT, "30000", 0, 3600000, false, S (peer_timeout_ms),
      "a client silent to ZeroMQ heartbeats this long is disconnected (0: never)" },
    { "curve-secret", 0, TF_CFG_STRING, NULL, 0, 0, true, S (curve_secret),
      "service's secret certificate (techfeed keygen); turns CURVE on" },
    { "writers", 0, TF_CFG_STRING, NULL, 0, 0, false, S (writers),
      "directory of public certificates allowed to write (with CURVE)" },
    { "readers", 0, TF_CFG_STRING, NULL, 0, 0, false, S (readers),
      "directory of keys allowed to read (unset: any key; writers always may)" },
    { "insecure", 0, TF_CFG_BOOL, "false", 0, 0, false, S (insecure),
      "allow plain TCP beyond loopback (no encryption, no authentication)" },
    { "http-addr", 0, TF_CFG_STRING, NULL, 0, 0, false, S (http_addr),
      "HOST:PORT for /healthz, /readyz and /metrics (off unless set)" },
    { "log-level", 0, TF_CFG_STRING, "info", 0, 0, false, S (log_level),
      "debug, info, warn or error" },
    { "log-format", 0, TF_CFG_STRING, NULL, 0, 0, false, S (log_format),
      "text, logfmt or json (default: text on a terminal, json otherwise)" },
};
#define OPTION_COUNT (sizeof s_options / sizeof s_options[0])

static const char *s_examples =
    "techfeed-ingestd — stores milestone records and publishes their changes.\n"
    "\n"
    "Examples:\n"
    "  techfeed-ingestd                                  # ./data/techfeed.db, ports 5560-5562\n"
    "  techfeed-ingestd -d /var/lib/techfeed --log-format json\n"
    "  TECHFEED_INGEST='tcp://*:5560' techfeed-ingestd --heartbeat-ms 500\n";

/*  Checks what the table's types cannot; exit status 78 names the setting. */
static int s_check (tf_server_config_t *config)
{
    if (tf_log_level_from_name (config->log_level) < 0) {
        fprintf (stderr,
                 "techfeed-ingestd: --log-level (TECHFEED_LOG_LEVEL): '%s' is not "
                 "debug, info, warn or error\n",
                 config->log_level);
        return -1;
    }
    if (!config->log_format)
        config->log_format = strdup (isatty (STDERR_FILENO) ? "text" : "json");
    if (tf_log_format_from_name (config->log_format) < 0) {
        fprintf (stderr,
                 "techfeed-ingestd: --log-format (TECHFEED_LOG_FORMAT): '%s' is not "
                 "text, logfmt or json\n",
                 config->log_format);
        return -1;
    }
    return 0;
}

/*  What tf_server_run would refuse at start, refused as a bad setting. */
static int s_check_server (const tf_server_config_t *config)
{
    char err[600];
    if (tf_server_check_config (config, err, sizeof err) == 0)
        return 0;
    fprintf (stderr, "techfeed-ingestd: %s\n", err);
    return -1;
}

int main (int argc, char *argv[])
{
    //  Past a file size limit, let writes fail (STORAGE errors) instead of
    //  being killed by SIGXFSZ.
    signal (SIGXFSZ, SIG_IGN);
    //  No settings are read again, and a closed terminal must not take the
    //  service down without its clean stop.
    signal (SIGHUP, SIG_IGN);
    tf_server_config_t config = { 0 };
    char err[512];
    int rc = tf_config_load (s_options, OPTION_COUNT, &config, argc, argv, err, sizeof err);
    int status = EX_OK;
    if (rc == TF_CONFIG_HELP)
        tf_config_usage (s_options, OPTION_COUNT, "techfeed-ingestd", s_examples);
    else if (rc == TF_CONFIG_ERROR) {
        fprintf (stderr, "techfeed-ingestd: %s\n", err);
        status = EX_CONFIG;
    } else if (s_check (&config))
        status = EX_CONFIG;
    else if (rc == TF_CONFIG_PRINT)
        tf_config_print (s_options, OPTION_COUNT, &config);
    else if (s_check_server (&config))
        status = EX_CONFIG;
    else if (tf_server_run (&config) != 0)
        status = EX_UNAVAILABLE;
    tf_config_free (s_options, OPTION_COUNT, &config);
    return status;
}
