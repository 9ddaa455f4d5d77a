/*  tf_log — see tf_log.h. */
#include "tf_log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

enum { S_QUOTED = 1, S_HIGH = 2 };

/*  The message with its control characters as escapes (\n, \t, \u001b):
    a client's string quoted in a message can neither start a line that
    looks like the service's own nor steer a terminal. S_QUOTED escapes
    '"' and '\\' too (a logfmt value), S_HIGH bytes from 0x80 (\x80: a
    message that is not UTF-8, which JSON cannot carry as it is). */
static void s_escape (const char *msg, char *out, size_t size, int how)
{
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *) msg; *c && n + 7 < size; c++) {
        const char *named = *c == '\n' ? "\\n" : *c == '\r' ? "\\r" : *c == '\t' ? "\\t" : NULL;
        if (named)
            n += (size_t) snprintf (out + n, size - n, "%s", named);
        else if (*c < 0x20 || *c == 0x7f)
            n += (size_t) snprintf (out + n, size - n, "\\u%04x", *c);
        else if ((how & S_HIGH) && *c >= 0x80)
            n += (size_t) snprintf (out + n, size - n, "\\x%02x", *c);
        else {
            if ((how & S_QUOTED) && (*c == '"' || *c == '\\'))
                out[n++] = '\\';
            out[n++] = (char) *c;
        }
    }
    out[n] = 0;
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
    char escaped[6 * sizeof msg + 1];

    if (s_format == TF_LOG_JSON) {
        //  jansson escapes control characters; it refuses invalid UTF-8
        json_t *line = json_pack ("{s:s, s:s, s:s}", "ts", ts, "level", name, "msg", msg);
        if (!line) {
            s_escape (msg, escaped, sizeof escaped, S_HIGH);
            line = json_pack ("{s:s, s:s, s:s}", "ts", ts, "level", name, "msg", escaped);
        }
        char *text = line ? json_dumps (line, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        if (!text)
            abort (); // out of memory
        fprintf (stderr, "%s\n", text);
        free (text);
        json_decref (line);
    } else if (s_format == TF_LOG_LOGFMT) {
        s_escape (msg, escaped, sizeof escaped, S_QUOTED);
        fprintf (stderr, "ts=%s level=%s msg=\"%s\"\n", ts, name, escaped);
    } else {
        s_escape (msg, escaped, sizeof escaped, 0);
        fprintf (stderr, "%s %-5s %s\n", ts, name, escaped);
    }
}
