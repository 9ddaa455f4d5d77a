/*  techfeed — the command-line client: put, delete, get, list, watch,
    status. Options go before or after the command; every endpoint comes
    from a flag, else the environment, else the default (loopback).
*/
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "tf_validate.h"

/*  Long options. Each has a bit so a command can say which it takes. */
enum {
    OPT_SERVER = 1,
    OPT_INGEST,
    OPT_EVENTS,
    OPT_SYNC,
    OPT_TIMEOUT,
    OPT_JSON,
    OPT_ATOMIC,
    OPT_EXPECT,
    OPT_SECTOR,
    OPT_ORG,
    OPT_COUNTRY,
    OPT_SINCE,
    OPT_UNTIL,
    OPT_COUNT,
    OPT_HELP,
    OPT_VERSION,
};
#define BIT(opt) (1u << (opt))
#define GLOBAL_OPTS                                                                                \
    (BIT (OPT_SERVER) | BIT (OPT_INGEST) | BIT (OPT_EVENTS) | BIT (OPT_SYNC) | BIT (OPT_TIMEOUT) | \
     BIT (OPT_JSON) | BIT (OPT_HELP) | BIT (OPT_VERSION))

static const struct option s_options[] = {
    { "server", required_argument, NULL, OPT_SERVER },
    { "ingest", required_argument, NULL, OPT_INGEST },
    { "events", required_argument, NULL, OPT_EVENTS },
    { "sync", required_argument, NULL, OPT_SYNC },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "json", no_argument, NULL, OPT_JSON },
    { "atomic", no_argument, NULL, OPT_ATOMIC },
    { "expect-revision", required_argument, NULL, OPT_EXPECT },
    { "sector", required_argument, NULL, OPT_SECTOR },
    { "org", required_argument, NULL, OPT_ORG },
    { "country", required_argument, NULL, OPT_COUNTRY },
    { "since", required_argument, NULL, OPT_SINCE },
    { "until", required_argument, NULL, OPT_UNTIL },
    { "count", required_argument, NULL, OPT_COUNT },
    { "help", no_argument, NULL, OPT_HELP },
    { "version", no_argument, NULL, OPT_VERSION },
    { NULL, 0, NULL, 0 },
};

/*  A command: name, what it does, its options, how many arguments. */
typedef struct {
    const char *name;
    int (*run) (cli_t *cli);
    unsigned options; /* BIT()s beyond the global ones */
    int min_args, max_args;
    const char *help; /* EXAMPLES first, then usage and options */
} s_command_t;

static const char s_help_put[] =
    "EXAMPLES\n"
    "  techfeed put milestones.ndjson         store every record of the file\n"
    "  techfeed put --atomic batch.json       all records or none\n"
    "  echo '{\"id\":\"x\",...}' | techfeed put   one record from stdin\n"
    "  techfeed put --expect-revision 3 a.json  only if the stored revision is still 3\n"
    "\n"
    "USAGE\n"
    "  techfeed put [OPTIONS] [FILE|-]\n"
    "\n"
    "Stores milestone records. FILE (default: stdin) holds one JSON object, a JSON\n"
    "array of objects, or NDJSON (one object per line). Every record is checked\n"
    "before anything is sent; errors are reported as FILE:LINE: /field: message.\n"
    "Prints one result per record: `ok  ID  rev N  seq S` on a terminal, NDJSON\n"
    "{\"id\",\"ok\",\"revision\",\"sequence\"|\"code\",\"field\",\"message\",\"line\"} otherwise.\n"
    "\n"
    "OPTIONS\n"
    "  --atomic             store all records or none (at most 1000)\n"
    "  --expect-revision N  store only if the stored revision is N (0: must not exist);\n"
    "                       the file must hold exactly one record\n"
    "\n"
    "EXIT STATUS\n"
    "  0 all stored, 65 a record was rejected, 66 no such file, 69 service unavailable\n";

static const char s_help_delete[] =
    "EXAMPLES\n"
    "  techfeed delete change-4-far-side-landing\n"
    "  techfeed delete change-4-far-side-landing --expect-revision 2\n"
    "\n"
    "USAGE\n"
    "  techfeed delete [OPTIONS] ID\n"
    "\n"
    "Deletes a record (subscribers see a delete event).\n"
    "\n"
    "OPTIONS\n"
    "  --expect-revision N  delete only if the stored revision is N\n"
    "\n"
    "EXIT STATUS\n"
    "  0 deleted, 1 not found, 65 conflict or bad id, 69 service unavailable\n";

static const char s_help_get[] =
    "EXAMPLES\n"
    "  techfeed get change-4-far-side-landing\n"
    "  techfeed get a b c --json | jq .title\n"
    "\n"
    "USAGE\n"
    "  techfeed get [OPTIONS] ID...\n"
    "\n"
    "Prints the records with these ids as JSON (indented on a terminal, one per\n"
    "line otherwise), in the order asked for; `ID: not found` on stderr for each\n"
    "missing one.\n"
    "\n"
    "EXIT STATUS\n"
    "  0 all found, 1 some not found, 65 bad id, 69 service unavailable\n";

static const char s_help_list[] =
    "EXAMPLES\n"
    "  techfeed list\n"
    "  techfeed list --sector space --sector rail --since 2019 --until 2020-06\n"
    "  techfeed list --org CNSA --json > space.ndjson\n"
    "\n"
    "USAGE\n"
    "  techfeed list [OPTIONS]\n"
    "\n"
    "Lists the records that match, read from one consistent snapshot: a table\n"
    "(date, sector, id, title; by date) on a terminal, NDJSON (by id) otherwise.\n"
    "\n"
    "OPTIONS\n"
    "  --sector S      only sector S (repeatable): ai telecom fintech energy space\n"
    "                  rail biotech quantum chips other\n"
    "  --org O         only records naming organization O (exact)\n"
    "  --country C     only country C (ISO 3166-1 alpha-2, e.g. CN)\n"
    "  --since DATE    date >= DATE (YYYY, YYYY-MM or YYYY-MM-DD, a prefix)\n"
    "  --until DATE    date <= DATE (a prefix: --until 2019 includes 2019-12-31)\n";

static const char s_help_watch[] =
    "EXAMPLES\n"
    "  techfeed watch\n"
    "  techfeed watch --sector space --sector ai\n"
    "  techfeed watch --json | jq -c 'select(.op == \"add\")'\n"
    "  techfeed watch --count 1 --json      wait for the next change, print it, exit\n"
    "\n"
    "USAGE\n"
    "  techfeed watch [OPTIONS]\n"
    "\n"
    "Prints the current records, then every change as it happens, until\n"
    "Ctrl-C. On a terminal: `17:42:18 + space ID \"title\" (rev 1)` (+ added,\n"
    "~ updated, - deleted). Otherwise NDJSON: {\"kind\":\"snapshot\",\"record\":{..}}\n"
    "per record, then {\"seq\",\"kind\":\"put\"|\"delete\",\"op\":\"add\"|\"update\"|\"delete\",\n"
    "\"id\",\"sector\",\"revision\",\"record\"} per change. Lost events are repaired from\n"
    "the service's log; resync, lost and recovered notices go to stderr.\n"
    "\n"
    "OPTIONS\n"
    "  --sector S   only sector S (repeatable)\n"
    "  --count N    exit after N changes\n";

static const char s_help_status[] =
    "EXAMPLES\n"
    "  techfeed status\n"
    "  techfeed status --json\n"
    "  techfeed status --sector space     count and digest of the space records\n"
    "\n"
    "USAGE\n"
    "  techfeed status [OPTIONS]\n"
    "\n"
    "The service's epoch, head sequence, record count, digest (PROTOCOL.md §10),\n"
    "oldest sequence in its log, per-sector heads and version. With --sector the\n"
    "count and digest are those of a snapshot of these sectors (what a view of\n"
    "them holds).\n"
    "\n"
    "OPTIONS\n"
    "  --sector S   only sector S (repeatable)\n";

static const s_command_t s_commands[] = {
    { "put", cli_put, BIT (OPT_ATOMIC) | BIT (OPT_EXPECT), 0, 1, s_help_put },
    { "delete", cli_delete, BIT (OPT_EXPECT), 1, 1, s_help_delete },
    { "get", cli_get, 0, 1, INT32_MAX, s_help_get },
    { "list", cli_list,
      BIT (OPT_SECTOR) | BIT (OPT_ORG) | BIT (OPT_COUNTRY) | BIT (OPT_SINCE) | BIT (OPT_UNTIL), 0,
      0, s_help_list },
    { "watch", cli_watch, BIT (OPT_SECTOR) | BIT (OPT_COUNT), 0, 0, s_help_watch },
    { "status", cli_status, BIT (OPT_SECTOR), 0, 0, s_help_status },
};
#define COMMANDS (sizeof s_commands / sizeof s_commands[0])

static const char s_help[] =
    "techfeed — store, read and watch technology milestones\n"
    "\n"
    "EXAMPLES\n"
    "  techfeed put milestones.ndjson              store records (JSON, array or NDJSON)\n"
    "  techfeed get change-4-far-side-landing      one record as JSON\n"
    "  techfeed list --sector space --since 2019   a table of matching records\n"
    "  techfeed watch --sector rail                the records, then every change live\n"
    "  techfeed delete some-id                     delete a record\n"
    "  techfeed status                             epoch, head sequence, record count\n"
    "  techfeed --server db1 status                the service on host db1\n"
    "  techfeed list --json | jq -r .id            NDJSON when piped or with --json\n"
    "\n"
    "USAGE\n"
    "  techfeed [OPTIONS] COMMAND [ARGS]   (options may also follow the command)\n"
    "\n"
    "COMMANDS\n"
    "  put [FILE|-]    store records; results per record\n"
    "  delete ID       delete a record\n"
    "  get ID...       print records by id\n"
    "  list            print the records that match filters\n"
    "  watch           print the records, then every change as it happens\n"
    "  status          the service's state\n"
    "  help [COMMAND]  this help, or a command's\n"
    "\n"
    "OPTIONS\n"
    "  --server HOST   the service on HOST: tcp://HOST:5560, :5561, :5562\n"
    "                  (env TECHFEED_SERVER)\n"
    "  --ingest EP     ingest endpoint (TECHFEED_INGEST, default " TF_DEFAULT_INGEST ")\n"
    "  --events EP     events endpoint (TECHFEED_EVENTS, default " TF_DEFAULT_EVENTS ")\n"
    "  --sync EP       sync endpoint (TECHFEED_SYNC, default " TF_DEFAULT_SYNC ")\n"
    "  --timeout MS    wait per try for the service (TECHFEED_TIMEOUT, default 3000)\n"
    "  --json          NDJSON output, also on a terminal\n"
    "  -h, --help      help; `techfeed help COMMAND` for a command's options\n"
    "  -V, --version   print the version\n"
    "  A flag wins over the environment, which wins over the default.\n"
    "\n"
    "EXIT STATUS\n"
    "  0 done, 1 not found (get, delete), 64 usage error, 65 bad data (a record\n"
    "  rejected), 66 input file missing, 69 service unavailable, 70 internal\n"
    "  error, 74 I/O error\n";

static const s_command_t *s_find (const char *name)
{
    for (size_t i = 0; i < COMMANDS; i++)
        if (strcmp (s_commands[i].name, name) == 0)
            return &s_commands[i];
    return NULL;
}

static int s_usage (const char *format, const char *arg)
{
    fputs ("techfeed: ", stderr);
    fprintf (stderr, format, arg);
    fputs ("\nTry 'techfeed --help'.\n", stderr);
    return EX_USAGE;
}

/*  Parses a non-negative integer; false when it is not one. */
static bool s_number (const char *text, uint64_t max, uint64_t *value)
{
    if (!text || !*text || *text == '-' || *text == '+')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull (text, &end, 10);
    if (errno || *end || v > max)
        return false;
    *value = v;
    return true;
}

/*  endpoint = flag, else tcp://--server:port, else env, else
    tcp://$TECHFEED_SERVER:port, else the default. */
static int s_endpoint (char *out, size_t outlen, const char *flag, const char *server,
                       const char *env, int port, const char *fallback)
{
    const char *env_value = getenv (env);
    const char *env_server = getenv ("TECHFEED_SERVER");
    if (env_value && !*env_value)
        env_value = NULL;
    if (env_server && !*env_server)
        env_server = NULL;
    const char *host = NULL;
    if (flag)
        snprintf (out, outlen, "%s", flag);
    else if (server)
        host = server;
    else if (env_value)
        snprintf (out, outlen, "%s", env_value);
    else if (env_server)
        host = env_server;
    else
        snprintf (out, outlen, "%s", fallback);
    if (host) {
        if (strstr (host, "://"))
            return s_usage ("--server (TECHFEED_SERVER) takes a host name, not '%s'; "
                            "use --ingest, --events, --sync for endpoints",
                            host);
        snprintf (out, outlen, "tcp://%s:%d", host, port);
    }
    return 0;
}

int main (int argc, char *argv[])
{
    cli_t cli = { .timeout_ms = TF_DEFAULT_TIMEOUT_MS };
    const char *server = NULL, *ingest = NULL, *events = NULL, *sync = NULL, *timeout = NULL;
    unsigned given = 0; // BIT()s of the options used
    bool help = false, json = false;
    uint64_t number;
    int opt;
    opterr = 0;
    while ((opt = getopt_long (argc, argv, ":hV", s_options, NULL)) != -1) {
        if (opt == 'h')
            opt = OPT_HELP;
        else if (opt == 'V')
            opt = OPT_VERSION;
        switch (opt) {
            case OPT_SERVER: server = optarg; break;
            case OPT_INGEST: ingest = optarg; break;
            case OPT_EVENTS: events = optarg; break;
            case OPT_SYNC: sync = optarg; break;
            case OPT_TIMEOUT: timeout = optarg; break;
            case OPT_JSON: json = true; break;
            case OPT_ATOMIC: cli.atomic = true; break;
            case OPT_EXPECT:
                if (!s_number (optarg, UINT64_MAX, &cli.expect))
                    return s_usage ("--expect-revision takes a revision number, not '%s'", optarg);
                cli.has_expect = true;
                break;
            case OPT_SECTOR: {
                int sector = tf_sector_from_slug (optarg);
                if (sector < 1)
                    return s_usage ("'%s' is not a sector (ai telecom fintech energy space rail "
                                    "biotech quantum chips other)",
                                    optarg);
                bool dup = false;
                for (size_t i = 0; i < cli.n_sectors; i++)
                    dup |= (int) cli.sectors[i] == sector;
                if (!dup)
                    cli.sectors[cli.n_sectors++] = (Techfeed__Sector) sector;
                break;
            }
            case OPT_ORG:
                if (!*optarg)
                    return s_usage ("--org takes an organization name%s", "");
                cli.org = optarg;
                break;
            case OPT_COUNTRY:
                if (!tf_valid_country (optarg))
                    return s_usage ("--country takes an ISO 3166-1 alpha-2 code (CN), not '%s'",
                                    optarg);
                cli.country = optarg;
                break;
            case OPT_SINCE:
            case OPT_UNTIL:
                if (!tf_valid_date (optarg))
                    return s_usage ("'%s' is not a date (YYYY, YYYY-MM or YYYY-MM-DD)", optarg);
                *(opt == OPT_SINCE ? &cli.since : &cli.until) = optarg;
                break;
            case OPT_COUNT:
                if (!s_number (optarg, LONG_MAX, &number) || number == 0)
                    return s_usage ("--count takes a positive number, not '%s'", optarg);
                cli.count = (long) number;
                break;
            case OPT_HELP: help = true; break;
            case OPT_VERSION: printf ("techfeed %s\n", techfeed_version ()); return 0;
            case ':': return s_usage ("%s needs a value", argv[optind - 1]);
            default: return s_usage ("unknown option '%s'", argv[optind - 1]);
        }
        given |= BIT (opt);
    }
    cli.args = argv + optind;
    cli.nargs = argc - optind;

    //  techfeed help [COMMAND], techfeed [COMMAND] --help
    const char *name = cli.nargs > 0 ? cli.args[0] : NULL;
    if (name && strcmp (name, "help") == 0) {
        help = true;
        name = cli.nargs > 1 ? cli.args[1] : NULL;
    }
    const s_command_t *command = name ? s_find (name) : NULL;
    if (name && !command)
        return s_usage ("'%s' is not a command", name);
    if (help || !command) {
        fputs (command ? command->help : s_help, command || help ? stdout : stderr);
        return help ? 0 : EX_USAGE;
    }
    cli.command = command->name;
    cli.args++;
    cli.nargs--;
    for (int opt_bit = OPT_SERVER; opt_bit <= OPT_VERSION; opt_bit++)
        if ((given & BIT (opt_bit)) && !((GLOBAL_OPTS | command->options) & BIT (opt_bit))) {
            char text[80];
            snprintf (text, sizeof text, "--%s", s_options[opt_bit - 1].name);
            fprintf (stderr, "techfeed %s: %s is not an option of this command\n", command->name,
                     text);
            fprintf (stderr, "Try 'techfeed help %s'.\n", command->name);
            return EX_USAGE;
        }
    if (cli.nargs < command->min_args || cli.nargs > command->max_args) {
        fprintf (stderr, "techfeed %s: %s arguments\n", command->name,
                 cli.nargs < command->min_args ? "missing" : "too many");
        fprintf (stderr, "Try 'techfeed help %s'.\n", command->name);
        return EX_USAGE;
    }

    const char *env_timeout = getenv ("TECHFEED_TIMEOUT");
    if (!timeout && env_timeout && *env_timeout)
        timeout = env_timeout;
    if (timeout) {
        if (!s_number (timeout, 24 * 3600 * 1000, &number) || number == 0)
            return s_usage ("the timeout is a number of milliseconds, not '%s'", timeout);
        cli.timeout_ms = (int) number;
    }
    if (s_endpoint (cli.ingest, sizeof cli.ingest, ingest, server, "TECHFEED_INGEST", 5560,
                    TF_DEFAULT_INGEST) ||
        s_endpoint (cli.events, sizeof cli.events, events, server, "TECHFEED_EVENTS", 5561,
                    TF_DEFAULT_EVENTS) ||
        s_endpoint (cli.sync, sizeof cli.sync, sync, server, "TECHFEED_SYNC", 5562,
                    TF_DEFAULT_SYNC))
        return EX_USAGE;
    cli.pretty = !json && isatty (STDOUT_FILENO);
    cli.json = !cli.pretty;
    //  The library's warnings (bad messages) must never mix into stdout's NDJSON
    zsys_set_logstream (stderr);
    return command->run (&cli);
}
