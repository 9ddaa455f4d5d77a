/*  tf_log — one event per line on stderr.

    text:   2026-11-28T17:42:18.123Z info  stored 3 records seq=17..19
    logfmt: ts=2026-11-28T17:42:18.123Z level=info msg="stored 3 records seq=17..19"
    json:   {"ts":"2026-11-28T17:42:18.123Z","level":"info","msg":"stored 3 records seq=17..19"}
*/
#ifndef TF_LOG_H_INCLUDED
#define TF_LOG_H_INCLUDED

typedef enum { TF_LOG_DEBUG, TF_LOG_INFO, TF_LOG_WARN, TF_LOG_ERROR } tf_log_level_t;
typedef enum { TF_LOG_TEXT, TF_LOG_LOGFMT, TF_LOG_JSON } tf_log_format_t;

void tf_log_set_level (tf_log_level_t level);
void tf_log_set_format (tf_log_format_t format);
/*  Parse "debug|info|warn|error" and "text|logfmt|json"; -1 when unknown. */
int tf_log_level_from_name (const char *name);
int tf_log_format_from_name (const char *name);

void tf_log (tf_log_level_t level, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

#define tf_debug(...) tf_log (TF_LOG_DEBUG, __VA_ARGS__)
#define tf_info(...) tf_log (TF_LOG_INFO, __VA_ARGS__)
#define tf_warn(...) tf_log (TF_LOG_WARN, __VA_ARGS__)
#define tf_error(...) tf_log (TF_LOG_ERROR, __VA_ARGS__)

#endif
