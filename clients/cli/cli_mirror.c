/*  techfeed mirror: a persistent view (tf_view_set_store) kept current
    until SIGINT or SIGTERM, one line per batch on stderr; --status reads
    the file alone (another mirror may be writing it), and refuses a
    --sector the file was not made for as the mirror does (78).
*/
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static void s_on_view (tf_view_t *view, tf_view_event_t what, const Techfeed__Milestone *record,
                       const char *id, void *arg)
{
    cli_t *cli = (cli_t *) arg;
    if (cli->quiet || what == TF_VIEW_ADD || what == TF_VIEW_UPDATE || what == TF_VIEW_DELETE)
        return;
    char clock[9];
    cli_clock (clock);
    if (what == TF_VIEW_SAVED)
        fprintf (stderr, "%s %s\n", clock, id);
    else if (what == TF_VIEW_READY)
        fprintf (stderr, "%s ready (%s): %zu records at position %" PRIu64 "\n", clock, id,
                 tf_view_count (view), tf_view_position (view));
    else
        cli_view_notice (view, what, id);
}

/*  "2026-11-28T17:42:18.123Z" of Unix ms, or "" for 0. */
static void s_time (int64_t ms, char out[32])
{
    out[0] = 0;
    if (ms <= 0)
        return;
    time_t seconds = (time_t) (ms / 1000);
    struct tm tm;
    gmtime_r (&seconds, &tm);
    size_t n = strftime (out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (out + n, 32 - n, ".%03dZ", (int) (ms % 1000));
}

static int s_status (cli_t *cli)
{
    if (access (cli->db, F_OK) != 0) {
        cli_error ("%s: %s", cli->db, strerror (errno));
        return EX_NOINPUT;
    }
    tf_view_store_status_t st;
    char err[700];
    if (tf_view_store_status (cli->db, &st, err, sizeof err) != 0) {
        cli_error ("%s", err);
        return EX_DATAERR;
    }
    //  A --sector (or TECHFEED_SECTOR) other than the file's is refused as
    //  the mirror refuses it; without one, any file's status
    if (cli->n_sectors > 0 &&
        tf_view_store_check_sectors (cli->db, &st, cli->sectors, cli->n_sectors, err, sizeof err)) {
        cli_error ("%s", err);
        return EX_CONFIG;
    }
    char hex[17], updated[32];
    tf_digest_format (st.digest, hex);
    s_time (st.updated_ms, updated);
    if (cli->json) {
        json_t *out = json_object ();
        json_object_set_new (out, "file", json_string (cli->db));
        json_object_set_new (out, "epoch", json_string (st.epoch));
        json_object_set_new (out, "position", json_integer ((json_int_t) st.position));
        json_object_set_new (out, "record_count", json_integer ((json_int_t) st.record_count));
        json_object_set_new (out, "digest", json_string (hex));
        json_t *sectors = json_array (), *last = json_object ();
        char *list = strdup (st.sectors), *save = NULL;
        for (char *slug = strtok_r (list, ",", &save); slug; slug = strtok_r (NULL, ",", &save))
            json_array_append_new (sectors, json_string (slug));
        free (list);
        for (int s = 1; s <= TF_SECTOR_MAX; s++)
            if (st.last[s])
                json_object_set_new (last, cli_slug (s), json_integer ((json_int_t) st.last[s]));
        json_object_set_new (out, "sectors", sectors);
        json_object_set_new (out, "sector_last", last);
        json_object_set_new (out, "updated_at", updated[0] ? json_string (updated) : json_null ());
        cli_print_json (cli, out);
        return 0;
    }
    printf ("file        %s\n", cli->db);
    printf ("epoch       %s\n", st.epoch[0] ? st.epoch : "(none: no snapshot yet)");
    printf ("position    %" PRIu64 "\n", st.position);
    printf ("records     %" PRIu64 "\n", st.record_count);
    printf ("digest      %s\n", hex);
    printf ("sectors     %s\n", st.sectors[0] ? st.sectors : "all");
    printf ("updated     %s\n", updated[0] ? updated : "never");
    return 0;
}

int cli_mirror (cli_t *cli)
{
    if (!cli->db) {
        fprintf (stderr, "techfeed mirror: --db FILE (or TECHFEED_MIRROR_DB) is needed\n"
                         "Try 'techfeed help mirror'.\n");
        return EX_USAGE;
    }
    if (cli->status_only)
        return s_status (cli);
    bool existed = access (cli->db, F_OK) == 0;
    tf_view_t *view = tf_view_new (cli->events, cli->sync);
    tf_view_set_sectors (view, cli->sectors, cli->n_sectors);
    tf_view_set_callback (view, s_on_view, cli);
    tf_view_set_timeout (view, cli->timeout_ms);
    int status = 0;
    if (cli->server_key && tf_view_set_curve (view, cli->server_key, cli->key) != 0)
        status = cli_bad_curve (tf_view_errstr (view));
    else if (tf_view_set_store (view, cli->db) != 0) {
        cli_error ("%s", tf_view_errstr (view));
        status = existed ? EX_DATAERR : EX_CANTCREAT;
    }
    if (status) {
        tf_view_destroy (&view);
        return status;
    }
    char clock[9];
    cli_clock (clock);
    if (!cli->quiet && tf_view_epoch (view)[0])
        fprintf (stderr, "%s %s holds %zu records at position %" PRIu64 "\n", clock, cli->db,
                 tf_view_count (view), tf_view_position (view));
    else if (!cli->quiet)
        fprintf (stderr, "%s %s is new\n", clock, cli->db);
    if (tf_view_start (view) != 0 && !zsys_interrupted) {
        cli_error ("%s", tf_view_errstr (view));
        if (!tf_view_socket (view)) // not started: the file or an endpoint is wrong
            status = EX_CONFIG;
        else if (!cli->quiet)
            fprintf (stderr, "%s waiting for the service (the mirror retries)\n", clock);
    }
    while (status == 0 && !zsys_interrupted)
        if (tf_view_poll (view, 1000) < 0 && !zsys_interrupted) {
            cli_error ("%s", tf_view_errstr (view)); // the file failed
            status = EX_IOERR;
        }
    tf_view_destroy (&view);
    //  What the file holds, which after a failed batch is less than the
    //  view had in memory
    tf_view_store_status_t st;
    char err[600];
    if (status != EX_CONFIG && !cli->quiet) {
        cli_clock (clock);
        if (tf_view_store_status (cli->db, &st, err, sizeof err) == 0)
            fprintf (stderr, "%s stopped: %s holds %" PRIu64 " records at position %" PRIu64 "\n",
                     clock, cli->db, st.record_count, st.position);
        else
            fprintf (stderr, "%s stopped: %s\n", clock, err);
    }
    return status;
}
