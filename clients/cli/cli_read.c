/*  techfeed get, list and status: reads on the sync socket.
*/
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tf_json.h"
#include "tf_validate.h"

#define CLI_GET_MAX 1000 /* ids per request (PROTOCOL.md §8) */

/*  Records collected from a query, for sorting or lookup. */
typedef struct {
    cli_t *cli;                    /* for printing as they come */
    bool stream;                   /* print each record at once (NDJSON) */
    Techfeed__Milestone **records; /* copies, owned */
    size_t n, cap;                 /* used, allocated */
    uint64_t digest;               /* PROTOCOL.md §10 over what was seen */
} s_records_t;

static void s_records_free (s_records_t *list)
{
    for (size_t i = 0; i < list->n; i++)
        techfeed__milestone__free_unpacked (list->records[i], NULL);
    free (list->records);
    list->records = NULL;
    list->n = list->cap = 0;
}

static int s_collect (const Techfeed__Milestone *record, void *arg)
{
    s_records_t *list = (s_records_t *) arg;
    list->digest += tf_digest_item (record->id, record->revision);
    if (list->stream) {
        cli_print_json (list->cli, tf_json_from_milestone (record));
        list->n++;
        return 0;
    }
    if (list->n == list->cap) {
        list->cap = list->cap ? list->cap * 2 : 64;
        list->records =
            (Techfeed__Milestone **) realloc (list->records, list->cap * sizeof *list->records);
        if (!list->records)
            abort ();
    }
    list->records[list->n++] = tf_milestone_dup (record);
    return 0;
}

/*  A query handle with the settings, or NULL with *status set. */
static tf_query_t *s_query (cli_t *cli, int *status)
{
    tf_query_t *query = tf_query_new (cli->sync);
    if (!query) {
        *status = cli_bad_endpoint ("--sync (TECHFEED_SYNC)", cli->sync);
        return NULL;
    }
    tf_query_set_timeout (query, cli->timeout_ms);
    if (cli->server_key && tf_query_set_curve (query, cli->server_key, cli->key) != 0) {
        *status = cli_bad_curve (tf_query_errstr (query));
        tf_query_destroy (&query);
    }
    return query;
}

static int s_failed (tf_query_t *query)
{
    cli_error ("%s", tf_query_errstr (query));
    //  A whole reply NOT_FOUND is a snapshot's cursor gone mid-stream (the
    //  service restarted, or it closed the cursor as idle): try again
    if (tf_query_code (query) == TECHFEED__ERROR_CODE__NOT_FOUND) {
        cli_error ("the snapshot was cut short; run the command again");
        return EX_UNAVAILABLE;
    }
    return cli_exit_for_code (tf_query_code (query));
}

int cli_get (cli_t *cli)
{
    for (int i = 0; i < cli->nargs; i++)
        if (!tf_valid_id (cli->args[i])) {
            cli_error ("%s: not a valid id ([a-z0-9][a-z0-9._-]*, at most %d bytes)", cli->args[i],
                       TF_ID_MAX);
            return EX_DATAERR;
        }
    int status = 0;
    tf_query_t *query = s_query (cli, &status);
    if (!query)
        return status;
    s_records_t found = { .cli = cli };
    for (int i = 0; i < cli->nargs && status == 0; i += CLI_GET_MAX) {
        size_t k =
            (size_t) (cli->nargs - i) < CLI_GET_MAX ? (size_t) (cli->nargs - i) : CLI_GET_MAX;
        if (tf_query_get (query, (const char *const *) cli->args + i, k, s_collect, &found) != 0)
            status = s_failed (query);
    }
    //  In the order asked for
    size_t missing = 0;
    for (int i = 0; i < cli->nargs && status == 0; i++) {
        const Techfeed__Milestone *record = NULL;
        for (size_t j = 0; j < found.n && !record; j++)
            if (strcmp (found.records[j]->id, cli->args[i]) == 0)
                record = found.records[j];
        if (record)
            cli_print_json (cli, tf_json_from_milestone (record));
        else {
            fprintf (stderr, "%s: not found\n", cli->args[i]);
            missing++;
        }
    }
    s_records_free (&found);
    tf_query_destroy (&query);
    return status ? status : missing ? CLI_NOT_FOUND : 0;
}

/*  The filter the options ask for; points into cli. */
static void s_filter (cli_t *cli, Techfeed__Filter *filter, bool full)
{
    techfeed__filter__init (filter);
    filter->n_sectors = cli->n_sectors;
    filter->sectors = cli->sectors;
    if (!full)
        return;
    filter->organization = (char *) cli->org;
    filter->country = (char *) cli->country;
    filter->date_from = (char *) cli->since;
    filter->date_to = (char *) cli->until;
}

int cli_list (cli_t *cli)
{
    int status = 0;
    tf_query_t *query = s_query (cli, &status);
    if (!query)
        return status;
    Techfeed__Filter filter;
    s_filter (cli, &filter, true);
    s_records_t list = { .cli = cli, .stream = cli->json };
    if (tf_query_list (query, &filter, s_collect, &list) != 0)
        status = s_failed (query);
    else if (!cli->json) {
        if (list.n == 0)
            fprintf (stderr, "no records\n");
        cli_print_table ((const Techfeed__Milestone *const *) list.records, list.n);
    }
    if (list.stream)
        list.n = 0; // nothing was kept
    s_records_free (&list);
    tf_query_destroy (&query);
    return status;
}

int cli_status (cli_t *cli)
{
    int status = 0;
    tf_query_t *query = s_query (cli, &status);
    if (!query)
        return status;
    tf_status_t st;
    if (tf_query_status (query, &st) != 0) {
        status = s_failed (query);
        tf_query_destroy (&query);
        return status;
    }
    //  For some sectors: count and digest of a snapshot with that filter
    uint64_t count = st.record_count, digest = st.digest;
    if (cli->n_sectors > 0) {
        Techfeed__Filter filter;
        s_filter (cli, &filter, false);
        s_records_t list = { .cli = cli };
        if (tf_query_list (query, &filter, s_collect, &list) != 0) {
            status = s_failed (query);
            tf_query_destroy (&query);
            return status;
        }
        count = list.n;
        digest = list.digest;
        s_records_free (&list);
    }
    tf_query_destroy (&query);

    char hex[17];
    tf_digest_format (digest, hex);
    if (cli->json) {
        json_t *out = json_object ();
        json_object_set_new (out, "epoch", json_string (st.epoch));
        json_object_set_new (out, "head_sequence", json_integer ((json_int_t) st.head_sequence));
        json_object_set_new (out, "record_count", json_integer ((json_int_t) count));
        json_object_set_new (out, "digest", json_string (hex));
        json_object_set_new (out, "log_first_sequence",
                             json_integer ((json_int_t) st.log_first_sequence));
        json_t *heads = json_object ();
        for (int s = 1; s <= TF_SECTOR_MAX; s++)
            json_object_set_new (heads, cli_slug (s),
                                 json_integer ((json_int_t) st.sector_heads[s]));
        json_object_set_new (out, "sector_heads", heads);
        if (cli->n_sectors > 0) {
            json_t *sectors = json_array ();
            for (size_t i = 0; i < cli->n_sectors; i++)
                json_array_append_new (sectors, json_string (cli_slug (cli->sectors[i])));
            json_object_set_new (out, "sectors", sectors);
        }
        json_object_set_new (out, "server_version", json_string (st.version));
        json_object_set_new (out, "client_version", json_string (techfeed_version ()));
        cli_print_json (cli, out);
        return 0;
    }
    printf ("epoch       %s\n", st.epoch);
    printf ("head        %" PRIu64 "\n", st.head_sequence);
    printf ("records     %" PRIu64 "%s\n", count,
            cli->n_sectors ? "  (in the sectors asked for)" : "");
    printf ("digest      %s\n", hex);
    printf ("log first   %" PRIu64 "\n", st.log_first_sequence);
    printf ("sectors    ");
    for (int s = 1; s <= TF_SECTOR_MAX; s++)
        if (st.sector_heads[s])
            printf (" %s %" PRIu64, cli_slug (s), st.sector_heads[s]);
    printf ("\nservice     %s\nclient      %s\n", st.version[0] ? st.version : "?",
            techfeed_version ());
    return 0;
}

int cli_health (cli_t *cli)
{
    int status = 0;
    tf_query_t *query = s_query (cli, &status);
    if (!query)
        return status;
    tf_query_set_retries (query, 1); // one try: the answer within --timeout, or none
    tf_status_t st;
    if (tf_query_status (query, &st) != 0) {
        if (tf_query_code (query) == TF_NO_REPLY)
            fprintf (stderr, "techfeed: unhealthy: no answer from %s within %d ms\n", cli->sync,
                     cli->timeout_ms);
        else
            fprintf (stderr, "techfeed: unhealthy: %s answered %s\n", cli->sync,
                     tf_query_errstr (query));
        status = EX_UNAVAILABLE;
    } else if (cli->json) {
        json_t *out = json_pack ("{s:b, s:s, s:s, s:I, s:I}", "healthy", 1, "sync", cli->sync,
                                 "epoch", st.epoch, "head_sequence", (json_int_t) st.head_sequence,
                                 "record_count", (json_int_t) st.record_count);
        cli_print_json (cli, out);
    } else
        printf ("healthy: %s, head %" PRIu64 ", %" PRIu64 " records\n", cli->sync, st.head_sequence,
                st.record_count);
    tf_query_destroy (&query);
    return status;
}
