/*  Output helpers of the techfeed CLI. See cli.h.
*/
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

void cli_error (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fputs ("techfeed: ", stderr);
    vfprintf (stderr, format, args);
    fputc ('\n', stderr);
    va_end (args);
}

void cli_report (const char *file, size_t line, const char *field, const char *message)
{
    if (field && *field)
        fprintf (stderr, "%s:%zu: %s: %s\n", file, line, field, message);
    else
        fprintf (stderr, "%s:%zu: %s\n", file, line, message);
}

void cli_print_json (cli_t *cli, json_t *value)
{
    size_t flags = cli->pretty ? JSON_INDENT (2) : JSON_COMPACT;
    int digits = tf_json_real_precision (value); // 138.7, not 138.69999999999999
    char *text = json_dumps (value, flags | JSON_REAL_PRECISION (digits));
    json_decref (value);
    if (!text)
        abort (); // jansson fails only on out of memory here
    fputs (text, stdout);
    fputc ('\n', stdout);
    free (text);
    fflush (stdout);
}

const char *cli_slug (int sector)
{
    const char *slug = tf_sector_slug (sector);
    return slug ? slug : "?";
}

void cli_clock (char out[9])
{
    time_t now = time (NULL);
    struct tm tm;
    localtime_r (&now, &tm);
    strftime (out, 9, "%H:%M:%S", &tm);
}

int cli_columns (void)
{
    struct winsize ws;
    if (ioctl (STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

void cli_print_cut (FILE *out, const char *text, int width)
{
    //  Count code points (close enough to columns for titles), not bytes
    int columns = 0;
    const unsigned char *p = (const unsigned char *) text;
    const unsigned char *cut = NULL;
    for (; *p; p++) {
        if ((*p & 0xC0) == 0x80)
            continue;
        if (columns == width - 1)
            cut = p;
        if (++columns > width)
            break;
    }
    if (!*p) {
        fputs (text, out);
        return;
    }
    fwrite (text, 1, (size_t) (cut - (const unsigned char *) text), out);
    fputs ("…", out);
}

static int s_by_date_then_id (const void *a, const void *b)
{
    const Techfeed__Milestone *x = *(const Techfeed__Milestone *const *) a;
    const Techfeed__Milestone *y = *(const Techfeed__Milestone *const *) b;
    int c = strcmp (x->date ? x->date : "", y->date ? y->date : "");
    return c ? c : strcmp (x->id, y->id);
}

void cli_print_table (const Techfeed__Milestone *const *records, size_t n)
{
    const Techfeed__Milestone **sorted =
        (const Techfeed__Milestone **) malloc ((n ? n : 1) * sizeof *sorted);
    if (!sorted)
        abort ();
    memcpy (sorted, records, n * sizeof *sorted);
    qsort (sorted, n, sizeof *sorted, s_by_date_then_id);
    int id_width = 2;
    for (size_t i = 0; i < n; i++)
        if ((int) strlen (sorted[i]->id) > id_width)
            id_width = (int) strlen (sorted[i]->id);
    //  date (10) sector (7) id title, two spaces between
    int title_width = cli_columns () - (10 + 2 + 7 + 2 + id_width + 2);
    if (title_width < 20)
        title_width = 20;
    for (size_t i = 0; i < n; i++) {
        const Techfeed__Milestone *r = sorted[i];
        printf ("%-10s  %-7s  %-*s  ", r->date ? r->date : "", cli_slug (r->sector), id_width,
                r->id);
        cli_print_cut (stdout, r->title ? r->title : "", title_width);
        fputc ('\n', stdout);
    }
    free (sorted);
    fflush (stdout);
}

int cli_exit_for_code (int code)
{
    switch (code) {
        case TECHFEED__ERROR_CODE__OK: return 0;
        case TECHFEED__ERROR_CODE__NOT_FOUND: return CLI_NOT_FOUND;
        case TECHFEED__ERROR_CODE__UNAVAILABLE:
        case TECHFEED__ERROR_CODE__STORAGE:
        case TECHFEED__ERROR_CODE__STORAGE_FULL:
        case TF_NO_REPLY: return EX_UNAVAILABLE;
        case TECHFEED__ERROR_CODE__UNAUTHORIZED: return EX_NOPERM;
        case TECHFEED__ERROR_CODE__UNSUPPORTED: return EX_PROTOCOL;
        case TF_MISUSE: return EX_SOFTWARE;
        default: return EX_DATAERR;
    }
}

int cli_bad_endpoint (const char *setting, const char *endpoint)
{
    cli_error ("%s: '%s' is not a valid endpoint (tcp://HOST:PORT, ipc://PATH)", setting, endpoint);
    return EX_CONFIG;
}

int cli_bad_curve (const char *errstr)
{
    //  techfeed.h: the reason starts with "server key" or "client certificate"
    bool server = strncmp (errstr, "server key", 10) == 0;
    cli_error ("%s: %s", server ? "--server-key (TECHFEED_SERVER_KEY)" : "--key (TECHFEED_KEY)",
               errstr);
    return EX_CONFIG;
}
