/*
 * privsep: give root up for good.  See the header.
 */
#include "privsep.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

bool privsep_become(const char *user, const char *fallback, char *who, size_t wholen, char *err,
                    size_t errlen)
{
    struct passwd *pw;
    const char *name = user;

    errno = 0;
    pw = getpwnam(user);
    if (pw == NULL && fallback != NULL) {
        name = fallback;
        pw = getpwnam(fallback);
    }
    if (pw == NULL) {
        snprintf(err, errlen, "user %s does not exist (create it, or set user = NAME)", user);
        return false;
    }
    if (pw->pw_uid == 0) {
        snprintf(err, errlen, "user %s is root: the daemon must not run as root", name);
        return false;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
        setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0) {
        snprintf(err, errlen, "cannot become user %s: %s", name, strerror(errno));
        return false;
    }
    /* Gone for good: root must not come back. */
    if (setuid(0) == 0 || geteuid() == 0) {
        snprintf(err, errlen, "root could be taken back after becoming %s", name);
        return false;
    }
    snprintf(who, wholen, "%s (uid %u, gid %u)", name, (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
    return true;
}
