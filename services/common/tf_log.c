/*  tf_log — see tf_log.h. */
#include "tf_log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static tf_log_level_t s_level = TF_LOG_INFO;
static tf_log_format_t s_format = TF_LOG_TEXT;
static const char *s_level_names[] = { "debug", "info", "warn", "error" };
static const char *s_format_names[] = { "text", "logfmt", "json" };

void tf_log_set_level (tf_log_level_t level)
{
    s_level = level;
}

void tf_log_set_format (tf_log_format_t format)
{
    s_format = format;
}

static int s_index_of (const char *name, const char **names, int count)
{
    for (int i = 0; name && i < count; i++)
        if (strcasecmp (name, names[i]) == 0)
            return i;
    return -1;
}

int tf_log_level_from_name (const char *name)
{
    return s_index_of (name, s_level_names, 4);
}

int tf_log_format_from_name (const char *name)
{
    return s_index_of (name, s_format_names, 3);
}

static void s_timestamp (char *out, size_t size)
{
    struct timespec now;
    struct tm tm;
    clock_gettime (CLOCK_REALTIME, &now);
    gmtime_r (&now.tv_sec, &tm);
    size_t n = strftime (out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (out + n, size - n, ".%03ldZ", now.tv_nsec / 1000000);
}

/*  logfmt quotes a value that holds spaces, quotes or '='. */
static void s_print_logfmt (FILE *out, const char *ts, const char *level, const char *msg)
{
    fprintf (out, "ts=%s level=%s msg=\"", ts, level);
    for (const char *c = msg; *c; c++) {
        if (*c == '"' || *c == '\\')
            fputc ('\\', out);
        if (*c == '\n')
            fputs ("\\n", out);
        else
            fputc (*c, out);
    }
    fputs ("\"\n", out);
}

void tf_log (tf_log_level_t level, const char *format, ...)
{
    if (level < s_level)
        return;
    char msg[2048];
    va_list args;
    va_start (args, format);
    vsnprintf (msg, sizeof msg, format, args);
    va_end (args);
    char ts[40];
    s_timestamp (ts, sizeof ts);
    const char *name = s_level_names[level];

    if (s_format == TF_LOG_JSON) {
        json_t *line = json_pack ("{s:s, s:s, s:s}", "ts", ts, "level", name, "msg", msg);
        char *text = line ? json_dumps (line, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        if (text)
            fprintf (stderr, "%s\n", text);
        else /* jansson refuses invalid UTF-8: keep the line anyway */
            fprintf (stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"(unprintable)\"}\n", ts,
                     name);
        free (text);
        json_decref (line);
    } else if (s_format == TF_LOG_LOGFMT)
        s_print_logfmt (stderr, ts, name, msg);
    else
        fprintf (stderr, "%s %-5s %s\n", ts, name, msg);
}
