/*  techfeed watch: the records of a view, then every change as it happens.

    stdout alone mirrors the view: the snapshot, then every add, update and
    delete (after a resync, the differences the new snapshot brought).
    Notices (resync, lost, recovered) go to stderr.
*/
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tf_json.h"

/*  What the callback needs. */
typedef struct {
    cli_t *cli;   /* options */
    bool ready;   /* the first snapshot was printed */
    long changes; /* changes printed since */
} s_watch_t;

static int s_by_id (const void *a, const void *b)
{
    const Techfeed__Milestone *x = *(const Techfeed__Milestone *const *) a;
    const Techfeed__Milestone *y = *(const Techfeed__Milestone *const *) b;
    return strcmp (x->id, y->id);
}

/*  The view's records, once, when the first snapshot is in. */
static void s_print_snapshot (s_watch_t *self, tf_view_t *view)
{
    size_t n = tf_view_count (view), i = 0;
    const Techfeed__Milestone **records =
        (const Techfeed__Milestone **) malloc ((n ? n : 1) * sizeof *records);
    if (!records)
        abort ();
    for (const Techfeed__Milestone *r = tf_view_first (view); r && i < n; r = tf_view_next (view))
        records[i++] = r;
    if (self->cli->json) {
        qsort (records, n, sizeof *records, s_by_id);
        for (i = 0; i < n; i++) {
            json_t *out = json_object ();
            json_object_set_new (out, "kind", json_string ("snapshot"));
            json_object_set_new (out, "record", tf_json_from_milestone (records[i]));
            cli_print_json (self->cli, out);
        }
    } else
        cli_print_table (records, n);
    free (records);
    char clock[9];
    cli_clock (clock);
    fprintf (stderr, "%s %zu records at sequence %" PRIu64 "; watching for changes\n", clock, n,
             tf_view_position (view));
}

static void s_print_change (s_watch_t *self, tf_view_t *view, tf_view_event_t what,
                            const Techfeed__Milestone *record)
{
    if (self->cli->json) {
        Techfeed__ChangeEvent event = TECHFEED__CHANGE_EVENT__INIT;
        uint64_t sequence = tf_view_change_sequence (view);
        event.has_sequence = sequence > 0;
        event.sequence = sequence;
        event.has_kind = event.has_sector = event.has_revision = 1;
        event.kind = what == TF_VIEW_DELETE ? TECHFEED__CHANGE_KIND__CHANGE_DELETE
                                            : TECHFEED__CHANGE_KIND__CHANGE_PUT;
        event.sector = record->sector;
        event.id = record->id;
        event.revision = record->revision;
        event.record = (Techfeed__Milestone *) record;
        json_t *out = tf_json_from_change (&event);
        json_object_set_new (out, "op", json_string (tf_view_event_name (what)));
        cli_print_json (self->cli, out);
        return;
    }
    char clock[9];
    cli_clock (clock);
    char mark = what == TF_VIEW_ADD ? '+' : what == TF_VIEW_UPDATE ? '~' : '-';
    char revision[40];
    snprintf (revision, sizeof revision, " (rev %" PRIu64 ")", record->revision);
    int width = cli_columns () - (int) (8 + 3 + strlen (cli_slug (record->sector)) + 1 +
                                        strlen (record->id) + 3 + strlen (revision));
    printf ("%s %c %s %s \"", clock, mark, cli_slug (record->sector), record->id);
    cli_print_cut (stdout, record->title ? record->title : "", width < 20 ? 20 : width);
    printf ("\"%s\n", revision);
    fflush (stdout);
}

void cli_view_notice (tf_view_t *view, tf_view_event_t what, const char *id)
{
    char clock[9];
    cli_clock (clock);
    switch (what) {
        case TF_VIEW_RESYNC: fprintf (stderr, "%s resync: %s; reloading\n", clock, id); break;
        case TF_VIEW_LOST:
            fprintf (stderr, "%s lost contact with the service: %s\n", clock, id);
            break;
        case TF_VIEW_RECOVERED:
            fprintf (stderr, "%s recovered: live again at sequence %" PRIu64 "\n", clock,
                     tf_view_position (view));
            break;
        default: break;
    }
}

static void s_on_view (tf_view_t *view, tf_view_event_t what, const Techfeed__Milestone *record,
                       const char *id, void *arg)
{
    s_watch_t *self = (s_watch_t *) arg;
    char clock[9];
    cli_clock (clock);
    switch (what) {
        case TF_VIEW_ADD:
        case TF_VIEW_UPDATE:
        case TF_VIEW_DELETE:
            //  Before the first READY the snapshot is loading: printed whole then
            if (!self->ready || (self->cli->count && self->changes >= self->cli->count))
                return;
            s_print_change (self, view, what, record);
            self->changes++;
            break;
        case TF_VIEW_READY:
            if (!self->ready) {
                self->ready = true;
                s_print_snapshot (self, view);
            } else
                fprintf (stderr, "%s resynced: %zu records at sequence %" PRIu64 "\n", clock,
                         tf_view_count (view), tf_view_position (view));
            break;
        default: cli_view_notice (view, what, id);
    }
}

int cli_watch (cli_t *cli)
{
    tf_view_t *view = tf_view_new (cli->events, cli->sync);
    s_watch_t watch = { .cli = cli };
    tf_view_set_sectors (view, cli->sectors, cli->n_sectors);
    tf_view_set_callback (view, s_on_view, &watch);
    tf_view_set_timeout (view, cli->timeout_ms);
    int status = 0;
    if (cli->server_key && tf_view_set_curve (view, cli->server_key, cli->key) != 0)
        status = cli_bad_curve (tf_view_errstr (view));
    else if (tf_view_start (view) != 0) {
        if (!zsys_interrupted) {
            cli_error ("%s", tf_view_errstr (view));
            status = tf_view_socket (view) ? EX_UNAVAILABLE : EX_CONFIG;
        }
    } else
        while (!zsys_interrupted && !(cli->count && watch.changes >= cli->count))
            if (tf_view_poll (view, 1000) < 0)
                break;
    tf_view_destroy (&view);
    return status;
}
