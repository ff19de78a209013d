// Archive metadata beyond permission bits and times: owner and group
// (-o, -g), extended attributes (-X, or user.* alone) and POSIX ACLs (-A).
//
// Each is synchronised rather than blindly set: what the destination already
// has right is not written (a re-run changes no ctime), and what it has and
// the source has not is removed (an inherited default ACL, a stale xattr on
// a directory merged into).  Order matters and is fixed here: owner first
// (chown clears setuid/setgid bits and security.capability), then xattrs and
// ACLs; the caller applies the mode (-p) and times after.
#pragma once

#include <sys/types.h>

#include "job.h"

namespace usync {

// Whether the job copies any of owner, group, xattrs or ACLs.
bool wants_extra_meta(const Job& job) noexcept;

// Makes dst's owner, group, xattrs and ACLs (those the job asks for) equal
// to src's.  st_mode tells the type (symlinks have no ACLs); uid and gid are
// the source's.  Returns 0 or an errno for the first part that failed (the
// others are still tried).  An unprivileged process keeps its own uid on
// what it creates, as rsync and cp -a do, and a group it is not in.
int sync_extra_meta(const Job& job, Place src, Place dst, mode_t st_mode, uid_t uid, gid_t gid) noexcept;

}  // namespace usync
