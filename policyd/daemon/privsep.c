/*
 * privsep: give root up for good.  See the header.
 */
#include "privsep.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool privsep_become(const char *user, const char *fallback, char *who, size_t wholen, char *err,
                    size_t errlen)
{
    struct passwd *pw;
    const char *name = user;
    gid_t groups[256];
    int n;

    errno = 0;
    pw = getpwnam(user);
    /* Only a user that does not exist falls back; a lookup that failed is an error. */
    if (pw == NULL && errno != 0 && errno != ENOENT && errno != ESRCH) {
        snprintf(err, errlen, "cannot look user %s up: %s", user, strerror(errno));
        return false;
    }
    if (pw == NULL && fallback != NULL) {
        name = fallback;
        pw = getpwnam(fallback);
    }
    if (pw == NULL) {
        snprintf(err, errlen, "user %s does not exist (create it, or set user = NAME)", user);
        return false;
    }
    if (pw->pw_uid == 0 || pw->pw_gid == 0) {
        snprintf(err, errlen, "user %s has uid or gid 0: the daemon must not run as root", name);
        return false;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
        setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0) {
        snprintf(err, errlen, "cannot become user %s: %s", name, strerror(errno));
        return false;
    }
    /* Nothing of root's may be left: group 0 among the user's groups would be. */
    n = getgroups((int)(sizeof(groups) / sizeof(groups[0])), groups);
    for (int i = 0; i < n; i++)
        if (groups[i] == 0) {
            snprintf(err, errlen, "user %s is in group 0 (root's): choose another user", name);
            return false;
        }
    /* Gone for good: root must not come back. */
    if (setuid(0) == 0 || setgid(0) == 0 || geteuid() == 0 || getegid() == 0) {
        snprintf(err, errlen, "root could be taken back after becoming %s", name);
        return false;
    }
    snprintf(who, wholen, "%s (uid %u, gid %u)", name, (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
    return true;
}

bool privsep_root_only(const char *path, bool directory, char *err, size_t errlen)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return false;
    }
    if (directory ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
        snprintf(err, errlen, "%s is not a %s", path, directory ? "directory" : "file");
        return false;
    }
    if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        snprintf(err, errlen,
                 "%s is owned by uid %u with mode %04o: read by root at start, it must be "
                 "root's and writable by root only (chown root %s; chmod go-w %s)",
                 path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777), path, path);
        return false;
    }
    return true;
}
