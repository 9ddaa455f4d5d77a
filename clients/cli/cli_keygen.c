/*  techfeed keygen: a CURVE key pair as CZMQ certificate files, the
    public one readable by all, the secret one by its owner only.
*/
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define CLI_NAME_MAX 64 /* longest NAME */

/*  [A-Za-z0-9._-], not starting with a dot: a plain file name. */
static bool s_valid_name (const char *name)
{
    size_t n = strlen (name);
    return n > 0 && n <= CLI_NAME_MAX && name[0] != '.' &&
           strspn (name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/*  Creates `path` empty with mode 0600, never over an existing file. */
static int s_reserve (const char *path)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    close (fd);
    return 0;
}

int cli_keygen (cli_t *cli)
{
    const char *name = cli->args[0];
    if (!s_valid_name (name)) {
        fprintf (stderr,
                 "techfeed keygen: '%s' is not a plain file name ([A-Za-z0-9._-], not starting "
                 "with a dot, at most %d)\nTry 'techfeed help keygen'.\n",
                 name, CLI_NAME_MAX);
        return EX_USAGE;
    }
    char public_path[PATH_MAX], secret_path[PATH_MAX + 8];
    snprintf (public_path, sizeof public_path, "%s/%s.key", cli->dir, name);
    snprintf (secret_path, sizeof secret_path, "%s_secret", public_path);
    //  Everything made here is the owner's only, until the public file is
    //  opened up on purpose
    mode_t umask_before = umask (077);
    int status = 0;
    const char *failed = NULL; // the path that could not be made
    if (zsys_dir_create ("%s", cli->dir) != 0)
        failed = cli->dir;
    else if (s_reserve (public_path) != 0)
        failed = public_path;
    else if (s_reserve (secret_path) != 0) {
        failed = secret_path;
        int saved = errno;
        unlink (public_path);
        errno = saved;
    }
    if (failed) {
        cli_error ("%s: %s%s", failed, strerror (errno),
                   errno == EEXIST ? " (keygen never overwrites a key)" : "");
        umask (umask_before);
        return EX_CANTCREAT;
    }
    zcert_t *cert = zcert_new ();
    if (!cert)
        abort ();
    zcert_set_meta (cert, "name", "%s", name);
    zcert_set_meta (cert, "created-by", "techfeed keygen %s", techfeed_version ());
    struct stat st;
    if (zcert_save (cert, public_path) != 0 || chmod (public_path, 0644) != 0) {
        cli_error ("%s: cannot write the certificate: %s", public_path, strerror (errno));
        status = EX_CANTCREAT;
    } else if (stat (secret_path, &st) != 0 || (st.st_mode & 07777) != 0600) {
        cli_error ("%s: mode is %04o, not 0600: removed", secret_path,
                   (unsigned) (st.st_mode & 07777));
        status = EX_CANTCREAT;
    }
    umask (umask_before);
    if (status) {
        unlink (public_path);
        unlink (secret_path);
    } else {
        printf ("%s\n", zcert_public_txt (cert));
        fprintf (stderr, "techfeed: wrote %s (public, 0644) and %s (secret, 0600)\n", public_path,
                 secret_path);
    }
    zcert_destroy (&cert);
    return status;
}
