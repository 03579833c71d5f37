/* outfile: files written whole or not at all (outfile.h) — the charts of
 * plot.c and the CSV of `gatelab export --csv`. */
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int outfile_open(outfile *o, const char *path, gl_error *err)
{
    memset(o, 0, sizeof *o);
    o->path = path;
    struct stat sb;
    if (!path || !*path)
        return gl_fail(err, "cannot write an empty path");
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return gl_fail(err, "cannot write %s: not a regular file", path);
    if (snprintf(o->tmp, sizeof o->tmp, "%s.tmp.%ld", path, (long)getpid()) >=
        (int)sizeof o->tmp)
        return gl_fail(err, "cannot write %s: path too long", path);
    int fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        return gl_fail(err, "cannot write %s: %s", path, strerror(errno));
    o->fp = fdopen(fd, "wb");
    if (!o->fp) {
        int e = errno;
        close(fd);
        unlink(o->tmp);
        return gl_fail(err, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

int outfile_close(outfile *o, int ok, gl_error *err)
{
    int e = 0;
    if (fflush(o->fp) != 0 || ferror(o->fp))
        e = errno ? errno : EIO;
    if (!e && fsync(fileno(o->fp)) != 0 && errno != EINVAL)
        e = errno;
    if (fclose(o->fp) != 0 && !e)
        e = errno;
    o->fp = NULL;
    if (ok && !e && rename(o->tmp, o->path) != 0)
        e = errno;
    if (!ok || e) {
        unlink(o->tmp);
        return ok ? gl_fail(err, "cannot write %s: %s", o->path, strerror(e)) : -1;
    }
    return 0;
}
