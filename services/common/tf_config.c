/*  tf_config — see tf_config.h. */
#include "tf_config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TF_CONFIG_MAX 64

/*  TECHFEED_ + upper-cased name with '-' → '_'. */
static void s_env_name (const char *name, char *out, size_t size)
{
    size_t n = (size_t) snprintf (out, size, "TECHFEED_");
    for (const char *c = name; *c && n + 1 < size; c++)
        out[n++] = *c == '-' ? '_' : (char) toupper ((unsigned char) *c);
    out[n] = 0;
}

static int s_parse_bool (const char *text, bool *value)
{
    static const char *yes[] = { "1", "true", "yes", "on" };
    static const char *no[] = { "0", "false", "no", "off" };
    for (int i = 0; i < 4; i++) {
        if (strcasecmp (text, yes[i]) == 0)
            return *value = true, 0;
        if (strcasecmp (text, no[i]) == 0)
            return *value = false, 0;
    }
    return -1;
}

/*  Stores `text` into the option's slot; -1 with errmsg when it is not a
    valid value. `source` says where it came from, for the message. */
static int s_assign (const tf_cfg_option_t *opt, void *target, const char *text, const char *source,
                     char *errmsg, size_t errlen)
{
    char *slot = (char *) target + opt->offset;
    char env[96];
    s_env_name (opt->name, env, sizeof env);
    if (opt->type == TF_CFG_STRING) {
        char **string = (char **) slot;
        free (*string);
        *string = text ? strdup (text) : NULL;
        if (text && !*string)
            abort ();
        return 0;
    }
    if (opt->type == TF_CFG_BOOL) {
        if (s_parse_bool (text, (bool *) slot) == 0)
            return 0;
        snprintf (errmsg, errlen, "--%s (%s) from %s: '%s' is not true or false", opt->name, env,
                  source, text);
        return -1;
    }
    char *end = NULL;
    errno = 0;
    long long value = strtoll (text, &end, 10);
    if (errno || end == text || *end) {
        snprintf (errmsg, errlen, "--%s (%s) from %s: '%s' is not an integer", opt->name, env,
                  source, text);
        return -1;
    }
    if (value < opt->min || value > opt->max) {
        snprintf (errmsg, errlen, "--%s (%s) from %s: %lld is out of range %" PRId64 "..%" PRId64,
                  opt->name, env, source, value, opt->min, opt->max);
        return -1;
    }
    *(int64_t *) slot = value;
    return 0;
}

int tf_config_load (const tf_cfg_option_t *options, size_t count, void *target, int argc,
                    char **argv, char *errmsg, size_t errlen)
{
    if (count > TF_CONFIG_MAX) {
        snprintf (errmsg, errlen, "too many settings");
        return TF_CONFIG_ERROR;
    }
    //  Defaults, then the environment. A bad variable is said after the
    //  flags are read: --help shows the help whatever the environment holds.
    char env_error[512] = "";
    for (size_t i = 0; i < count; i++) {
        const tf_cfg_option_t *opt = &options[i];
        char env[96];
        s_env_name (opt->name, env, sizeof env);
        const char *value = getenv (env);
        if (opt->default_value &&
            s_assign (opt, target, opt->default_value, "default", errmsg, errlen))
            return TF_CONFIG_ERROR;
        if (value && !env_error[0]) // the first bad one is said
            s_assign (opt, target, value, "environment", env_error, sizeof env_error);
    }
    //  Flags last, so they win.
    struct option longopts[TF_CONFIG_MAX + 3];
    char shortopts[TF_CONFIG_MAX * 2 + 4] = "h";
    size_t s = 1;
    for (size_t i = 0; i < count; i++) {
        bool flag_only = options[i].type == TF_CFG_BOOL;
        longopts[i] =
            (struct option){ options[i].name, flag_only ? optional_argument : required_argument,
                             NULL, (int) (256 + i) };
        if (options[i].short_flag) {
            shortopts[s++] = options[i].short_flag;
            if (!flag_only)
                shortopts[s++] = ':';
        }
    }
    shortopts[s] = 0;
    longopts[count] = (struct option){ "help", no_argument, NULL, 'h' };
    longopts[count + 1] = (struct option){ "print-config", no_argument, NULL, 1 };
    longopts[count + 2] = (struct option){ NULL, 0, NULL, 0 };

    int result = TF_CONFIG_OK;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long (argc, argv, shortopts, longopts, NULL)) != -1) {
        if (c == 'h')
            return TF_CONFIG_HELP;
        if (c == 1) {
            result = TF_CONFIG_PRINT;
            continue;
        }
        const tf_cfg_option_t *opt = NULL;
        if (c >= 256 && c < 256 + (int) count)
            opt = &options[c - 256];
        for (size_t i = 0; !opt && i < count; i++)
            if (options[i].short_flag && options[i].short_flag == c)
                opt = &options[i];
        if (!opt) {
            const char *bad = argv[optind - 1];
            if (c == '?' && optopt && strchr (shortopts, optopt))
                snprintf (errmsg, errlen, "option -%c needs a value", optopt);
            else
                snprintf (errmsg, errlen, "unknown or incomplete option '%s'", bad);
            return TF_CONFIG_ERROR;
        }
        const char *value = optarg ? optarg : (opt->type == TF_CFG_BOOL ? "true" : "");
        if (s_assign (opt, target, value, "flag", errmsg, errlen))
            return TF_CONFIG_ERROR;
    }
    if (optind < argc) {
        snprintf (errmsg, errlen, "unexpected argument '%s'", argv[optind]);
        return TF_CONFIG_ERROR;
    }
    if (env_error[0]) {
        snprintf (errmsg, errlen, "%s", env_error);
        return TF_CONFIG_ERROR;
    }
    return result;
}

void tf_config_free (const tf_cfg_option_t *options, size_t count, void *target)
{
    for (size_t i = 0; i < count; i++)
        if (options[i].type == TF_CFG_STRING) {
            char **slot = (char **) ((char *) target + options[i].offset);
            free (*slot);
            *slot = NULL;
        }
}

void tf_config_usage (const tf_cfg_option_t *options, size_t count, const char *program,
                      const char *examples)
{
    printf ("%s\nUsage: %s [OPTION]...\n\nOptions (flag, environment variable, default):\n",
            examples, program);
    for (size_t i = 0; i < count; i++) {
        char env[96];
        s_env_name (options[i].name, env, sizeof env);
        char flag[64];
        if (options[i].short_flag)
            snprintf (flag, sizeof flag, "-%c, --%s", options[i].short_flag, options[i].name);
        else
            snprintf (flag, sizeof flag, "    --%s", options[i].name);
        printf ("  %-28s %s\n      %s (default: %s)\n", flag, options[i].help, env,
                options[i].default_value ? options[i].default_value : "unset");
    }
    printf ("  %-28s show this help\n  %-28s show the effective settings and exit\n", "-h, --help",
            "    --print-config");
}

void tf_config_print (const tf_cfg_option_t *options, size_t count, const void *target)
{
    for (size_t i = 0; i < count; i++) {
        const char *slot = (const char *) target + options[i].offset;
        printf ("%s=", options[i].name);
        if (options[i].secret)
            printf ("%s\n", *(char *const *) slot ? "********" : "");
        else if (options[i].type == TF_CFG_STRING)
            printf ("%s\n", *(char *const *) slot ? *(char *const *) slot : "");
        else if (options[i].type == TF_CFG_BOOL)
            printf ("%s\n", *(const bool *) slot ? "true" : "false");
        else
            printf ("%" PRId64 "\n", *(const int64_t *) slot);
    }
}
