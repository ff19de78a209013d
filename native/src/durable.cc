#include "durable.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "unique_fd.h"

namespace usync {

TestSeams test_seams;

int sync_fd(int fd, bool is_dir) noexcept {
  while (::fsync(fd) != 0)
    if (errno != EINTR) return errno;
  if (test_seams.on_fsync != nullptr) test_seams.on_fsync(is_dir);
  return 0;
}

int sync_dir_path(const char* path, bool parent_of) noexcept {
  std::string dir;
  try {
    dir = path;
    if (parent_of) {
      while (dir.size() > 1 && dir.back() == '/') dir.pop_back();  // "a/b/" names b
      const size_t slash = dir.rfind('/');
      dir = slash == std::string::npos ? "." : slash == 0 ? "/" : dir.substr(0, slash);
    }
  } catch (...) {
    return ENOMEM;
  }
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return errno;
  return sync_fd(fd.get(), true);
}

int sync_pair_parent(const Job& job, const FileTask& t, int* step) noexcept {
  if (t.dir != nullptr || !job.cfg.has(USYNC_FSYNC)) return 0;
  const int err = sync_dir_path(t.dst_name.c_str(), true);
  if (err != 0) *step = USYNC_STEP_FSYNC;
  return err;
}

int seal_file(const Job& job, int fd, int* step) noexcept {
  if (!job.cfg.has(USYNC_FSYNC)) return 0;
  const int err = sync_fd(fd, false);
  if (err != 0) *step = USYNC_STEP_FSYNC;
  return err;
}

}  // namespace usync
