/*  tf_config — settings from flags, TECHFEED_* environment variables and
    defaults, in that order of precedence, described once in a table.

    A setting named "heartbeat-interval" is the flag --heartbeat-interval
    and the variable TECHFEED_HEARTBEAT_INTERVAL. Values are checked when
    loaded; a bad one is reported with the setting's flag and variable.
*/
#ifndef TF_CONFIG_H_INCLUDED
#define TF_CONFIG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TF_CFG_STRING, /* char * (owned by the config) */
    TF_CFG_INT,    /* int64_t within [min, max] */
    TF_CFG_BOOL,   /* bool: true/false/1/0/yes/no; a bare flag means true */
} tf_cfg_type_t;

typedef struct {
    const char *name; /* "heartbeat-interval" */
    char short_flag;  /* 'd' or 0 */
    tf_cfg_type_t type;
    const char *default_value; /* NULL: unset */
    int64_t min, max;          /* TF_CFG_INT bounds */
    bool secret;               /* masked by tf_config_print */
    size_t offset;             /* where the value goes in the target struct */
    const char *help;
} tf_cfg_option_t;

#define TF_CONFIG_OK 0
#define TF_CONFIG_HELP 1   /* --help was given */
#define TF_CONFIG_PRINT 2  /* --print-config was given */
#define TF_CONFIG_ERROR -1 /* bad flag or value: errmsg says which */

/*  Fills `target` from argv, the environment and the defaults. Strings are
    strdup'd: release them with tf_config_free. */
int tf_config_load (const tf_cfg_option_t *options, size_t count, void *target, int argc,
                    char **argv, char *errmsg, size_t errlen);
void tf_config_free (const tf_cfg_option_t *options, size_t count, void *target);

/*  Usage text: one line per setting with flag, variable, default, help. */
void tf_config_usage (const tf_cfg_option_t *options, size_t count, const char *program,
                      const char *examples);
/*  Effective values, secrets masked, as name=value lines on stdout. */
void tf_config_print (const tf_cfg_option_t *options, size_t count, const void *target);

#endif
