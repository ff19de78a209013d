#include "prefetch.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <new>

namespace usync {
namespace {

struct dirent64_raw {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

constexpr size_t kBuf = 32 * 1024;

}  // namespace

Prefetcher::Prefetcher(int root_fd, unsigned threads) noexcept {
  // A description of its own: a dup would share the walker's offset in
  // the directory (read to its end by now).
  root_.reset(openat(root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root_.valid()) return;
  try {
    stack_.emplace_back();  // "": the root itself
    for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
  } catch (...) {
    // Fewer threads (or none): a hint, not a duty.
  }
}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

size_t Prefetcher::listed() const noexcept {
  std::lock_guard lk(mu_);
  return listed_;
}

void Prefetcher::run() noexcept {
  std::unique_ptr<char[]> buf(new (std::nothrow) char[kBuf]);
  if (!buf) return;
  for (;;) {
    std::string rel;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !stack_.empty() || busy_ == 0; });
      if (stop_ || stack_.empty()) return;  // stopped, or nothing left and nobody to add more
      rel = std::move(stack_.back());
      stack_.pop_back();
      ++busy_;
    }
    list(rel, buf.get(), kBuf);
    {
      std::lock_guard lk(mu_);
      --busy_;
      ++listed_;
    }
    cv_.notify_all();
  }
}

void Prefetcher::list(const std::string& rel, char* buf, size_t size) noexcept {
  UniqueFd fd;
  if (rel.empty()) {
    fd.reset(openat(root_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  } else {
    open_how how{};
    how.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
    fd.reset(static_cast<int>(syscall(SYS_openat2, root_.get(), rel.c_str(), &how, sizeof how)));
  }
  if (!fd.valid()) return;
  std::vector<std::string> dirs;
  for (;;) {
    const long n = syscall(SYS_getdents64, fd.get(), buf, size);
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      const auto* e = reinterpret_cast<const dirent64_raw*>(buf + off);
      off += e->d_reclen;
      const char* name = e->d_name;
      if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
      bool dir = e->d_type == DT_DIR;
      if (e->d_type == DT_REG || e->d_type == DT_UNKNOWN) {
        // The inode, read now so that the walker's own fstatat finds it.
        struct stat st {};
        if (fstatat(fd.get(), name, &st, AT_SYMLINK_NOFOLLOW) == 0) dir = S_ISDIR(st.st_mode);
      }
      if (dir) {
        try {
          dirs.push_back(rel.empty() ? std::string(name) : rel + '/' + name);
        } catch (...) {
        }
      }
    }
    std::lock_guard lk(mu_);
    if (stop_) return;
  }
  if (dirs.empty()) return;
  {
    std::lock_guard lk(mu_);
    for (std::string& d : dirs) {
      if (stack_.size() >= kMaxPending) break;
      try {
        stack_.push_back(std::move(d));
      } catch (...) {
        break;
      }
    }
  }
  cv_.notify_all();
}

}  // namespace usync
