#include "meta.h"
#include "durable.h"

#include <attr/libattr.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace usync {
namespace {

// The *xattrat system calls (Linux 6.13) reach an entry by directory
// descriptor and name without following it; older kernels go through the
// directory's /proc/self/fd link instead.
#ifndef SYS_setxattrat
#define SYS_setxattrat 463
#define SYS_getxattrat 464
#define SYS_listxattrat 465
#define SYS_removexattrat 466
#endif

struct XattrArgs {  // struct xattr_args
  uint64_t value;
  uint32_t size;
  uint32_t flags;
};

std::atomic<bool> g_no_at_calls{false};

unsigned at_flags(Place p) noexcept {
  if (*p.name == '\0') return AT_EMPTY_PATH;
  return p.follow ? 0 : AT_SYMLINK_NOFOLLOW;
}

// The /proc path of p, and whether the l* variants apply (p names an entry
// in a directory, which must not be followed).
bool proc_path(Place p, char* buf, size_t size) noexcept {
  if (p.dirfd == AT_FDCWD)
    std::snprintf(buf, size, "%s", p.name);
  else if (*p.name == '\0')
    std::snprintf(buf, size, "/proc/self/fd/%d", p.dirfd);
  else
    std::snprintf(buf, size, "/proc/self/fd/%d/%s", p.dirfd, p.name);
  return *p.name != '\0' && !p.follow;
}

bool at_calls() noexcept { return !g_no_at_calls.load(std::memory_order_relaxed); }
bool fell_back(long ret) noexcept {
  if (ret < 0 && errno == ENOSYS) {
    g_no_at_calls.store(true, std::memory_order_relaxed);
    return true;
  }
  return false;
}

ssize_t list_x(Place p, char* buf, size_t size) noexcept {
  if (at_calls()) {
    const long r = syscall(SYS_listxattrat, p.dirfd, p.name, at_flags(p), buf, size);
    if (!fell_back(r)) return r;
  }
  char path[PATH_MAX];
  return proc_path(p, path, sizeof path) ? llistxattr(path, buf, size) : listxattr(path, buf, size);
}

ssize_t get_x(Place p, const char* name, void* buf, size_t size) noexcept {
  if (at_calls()) {
    XattrArgs a{reinterpret_cast<uint64_t>(buf), static_cast<uint32_t>(size), 0};
    const long r = syscall(SYS_getxattrat, p.dirfd, p.name, at_flags(p), name, &a, sizeof a);
    if (!fell_back(r)) return r;
  }
  char path[PATH_MAX];
  return proc_path(p, path, sizeof path) ? lgetxattr(path, name, buf, size) : getxattr(path, name, buf, size);
}

int set_x(Place p, const char* name, const void* value, size_t size) noexcept {
  if (at_calls()) {
    XattrArgs a{reinterpret_cast<uint64_t>(value), static_cast<uint32_t>(size), 0};
    const long r = syscall(SYS_setxattrat, p.dirfd, p.name, at_flags(p), name, &a, sizeof a);
    if (!fell_back(r)) return static_cast<int>(r);
  }
  char path[PATH_MAX];
  return proc_path(p, path, sizeof path) ? lsetxattr(path, name, value, size, 0) : setxattr(path, name, value, size, 0);
}

int remove_x(Place p, const char* name) noexcept {
  if (at_calls()) {
    const long r = syscall(SYS_removexattrat, p.dirfd, p.name, at_flags(p), name);
    if (!fell_back(r)) return static_cast<int>(r);
  }
  char path[PATH_MAX];
  return proc_path(p, path, sizeof path) ? lremovexattr(path, name) : removexattr(path, name);
}

// Reads a list or a value whose size may change between the size query and
// the read (ERANGE): query, read, retry.  Returns 0 or an errno.
template <typename Fn>
int read_sized(Fn fn, std::string* out) noexcept {
  try {
    for (int tries = 0; tries < 8; ++tries) {
      const ssize_t n = fn(nullptr, 0);
      if (n < 0) return errno;
      out->resize(static_cast<size_t>(n));
      if (n == 0) return 0;
      const ssize_t m = fn(out->data(), out->size());
      if (m >= 0) {
        out->resize(static_cast<size_t>(m));
        return 0;
      }
      if (errno != ERANGE) return errno;
    }
    return ERANGE;
  } catch (...) {
    return ENOMEM;
  }
}

constexpr std::string_view kAclAccess = "system.posix_acl_access";
constexpr std::string_view kAclDefault = "system.posix_acl_default";

// Which attribute names the job manages: -X the user, trusted and security
// namespaces (rsync's -X), USYNC_USER_XATTRS the user namespace, -A the two
// POSIX ACLs.  Other system.* names are the filesystem's own.
bool managed(const Job& job, std::string_view name) noexcept {
  if (name == kAclAccess || name == kAclDefault) return job.cfg.has(USYNC_ACLS);
  if (!job.cfg.has(USYNC_XATTRS)) return job.cfg.has(USYNC_USER_XATTRS) && name.starts_with("user.");
  // Without privilege only user.* can be set (as rsync does); trusted.*
  // and security.capability need CAP_SYS_ADMIN / CAP_SETFCAP.
  static const bool root = geteuid() == 0;
  if (!root) return name.starts_with("user.");
  return name.starts_with("user.") || name.starts_with("trusted.") || name.starts_with("security.");
}

// Whether /etc/xattr.conf marks name "skip" (libattr reads it; cp -a and
// mv obey it): attributes a filesystem keeps for itself, such as XFS's
// second copy of each POSIX ACL (trusted.SGI_ACL_FILE, _DEFAULT), or that
// only the kernel writes (security.evm).  Neither copied nor removed: a
// source on ext4 lacks XFS's copy of its ACL, and removing that from an
// XFS destination removes the ACL itself.
bool filesystems_own(const char* name) noexcept {
  // libattr reads the file on its first call, without a lock: once, here.
  static std::once_flag read_conf;
  std::call_once(read_conf, [] { attr_copy_action("", nullptr); });
  return attr_copy_action(name, nullptr) == ATTR_ACTION_SKIP;
}

// The destination's own label, which the source's absence must not remove.
bool keep_on_destination(std::string_view name) noexcept { return name == "security.selinux"; }

// name -> value of the managed attributes of p.
int read_all(const Job& job, Place p, std::vector<std::pair<std::string, std::string>>* out) noexcept {
  std::string list;
  int err = read_sized([&](char* b, size_t n) { return list_x(p, b, n); }, &list);
  if (err == ENOTSUP || err == EOPNOTSUPP) return 0;  // no xattrs here: none to copy
  if (err != 0) return err;
  try {
    for (size_t i = 0; i < list.size();) {
      const char* name = list.data() + i;
      const size_t len = strnlen(name, list.size() - i);
      i += len + 1;
      if (!managed(job, std::string_view(name, len)) || filesystems_own(name)) continue;
      std::string value;
      err = read_sized([&](char* b, size_t n) { return get_x(p, name, b, n); }, &value);
      if (err == ENODATA) continue;  // removed meanwhile
      if (err != 0) return err;
      out->emplace_back(std::string(name, len), std::move(value));
    }
  } catch (...) {
    return ENOMEM;
  }
  return 0;
}

int sync_xattrs(const Job& job, Place src, Place dst, mode_t st_mode) noexcept {
  std::vector<std::pair<std::string, std::string>> want, have;
  if (const int err = read_all(job, src, &want); err != 0) return err;
  if (const int err = read_all(job, dst, &have); err != 0) return err;
  int first = 0;
  auto note = [&](int r) {
    if (r != 0 && first == 0) first = errno;
  };
  for (const auto& [name, value] : have) {
    bool kept = false;
    for (const auto& w : want) kept |= w.first == name;
    if (!kept && !keep_on_destination(name)) note(remove_x(dst, name.c_str()));
  }
  for (const auto& [name, value] : want) {
    bool same = false;
    for (const auto& h : have) same |= h.first == name && h.second == value;
    // ACLs: only directories have a default one, and symlinks none.
    if (same || (S_ISLNK(st_mode) && name.starts_with("system."))) continue;
    note(set_x(dst, name.c_str(), value.data(), value.size()));
  }
  return first;
}

int sync_owner(const Job& job, Place dst, uid_t uid, gid_t gid) noexcept {
  const bool root = geteuid() == 0;
  struct stat now {};
  const int flags = *dst.name == '\0' ? AT_EMPTY_PATH : AT_SYMLINK_NOFOLLOW;
  if (fstatat(dst.dirfd, dst.name, &now, flags) != 0) return errno;
  // Without privilege a file cannot be given away (rsync and cp -a keep the
  // caller's uid then); a group is kept only if the caller is in it.
  const uid_t want_uid = job.cfg.has(USYNC_OWNER) && root ? uid : static_cast<uid_t>(-1);
  const gid_t want_gid = job.cfg.has(USYNC_GROUP) ? gid : static_cast<gid_t>(-1);
  const bool uid_right = want_uid == static_cast<uid_t>(-1) || now.st_uid == want_uid;
  const bool gid_right = want_gid == static_cast<gid_t>(-1) || now.st_gid == want_gid;
  if (uid_right && gid_right) return 0;
  if (fchownat(dst.dirfd, dst.name, uid_right ? static_cast<uid_t>(-1) : want_uid,
               gid_right ? static_cast<gid_t>(-1) : want_gid, flags) == 0)
    return 0;
  if (errno == EPERM && !root) return 0;
  return errno;
}

}  // namespace

bool wants_extra_meta(const Job& job) noexcept {
  return job.cfg.has(USYNC_OWNER | USYNC_GROUP | USYNC_XATTRS | USYNC_USER_XATTRS | USYNC_ACLS);
}

int sync_extra_meta(const Job& job, Place src, Place dst, mode_t st_mode, uid_t uid, gid_t gid) noexcept {
  if (test_seams.before_extra_meta != nullptr) test_seams.before_extra_meta();
  int first = 0;
  if (job.cfg.has(USYNC_OWNER | USYNC_GROUP)) first = sync_owner(job, dst, uid, gid);
  if (job.cfg.has(USYNC_XATTRS | USYNC_USER_XATTRS | USYNC_ACLS)) {
    const int err = sync_xattrs(job, src, dst, st_mode);
    if (first == 0) first = err;
  }
  return first;
}

}  // namespace usync
