// Helpers for tests that build real trees: a temporary directory, file
// writers, and a whole-tree comparison that works below PATH_MAX through
// directory fds.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <utility>
#include <string>
#include <vector>

#include "uringsync/uringsync.h"

namespace usync::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "usync-test-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

inline std::string Pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  unsigned x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 16);
  }
  return s;
}

// n bytes as lower-case hex.
inline std::string Hex(const uint8_t* p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) s += digits[p[i] >> 4], s += digits[p[i] & 15];
  return s;
}

inline void WriteFile(int dirfd, const std::string& name, const std::string& data, mode_t mode = 0644) {
  int fd = openat(dirfd, name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) std::abort();
  if (!data.empty() && write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) std::abort();
  fchmod(fd, mode);
  close(fd);
}

inline void WriteFile(const std::string& path, const std::string& data, mode_t mode = 0644) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  WriteFile(AT_FDCWD, path, data, mode);
}

inline std::string ReadFile(int dirfd, const std::string& name) {
  int fd = openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "<missing>";
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

struct Entry {
  mode_t mode = 0;      // type and permission bits
  std::string content;  // file bytes or symlink target
  bool operator==(const Entry& o) const { return mode == o.mode && content == o.content; }
};

// Relative path -> entry, for every entry under dirfd (recursively).
inline void Snapshot(int dirfd, const std::string& prefix, std::map<std::string, Entry>* out) {
  int fd = dup(dirfd);
  DIR* d = fdopendir(fd);
  if (d == nullptr) return;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st {};
    if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    Entry en;
    en.mode = st.st_mode;
    const std::string rel = prefix + name;
    if (S_ISREG(st.st_mode)) {
      en.content = ReadFile(dirfd, name);
    } else if (S_ISLNK(st.st_mode)) {
      std::vector<char> buf(static_cast<size_t>(st.st_size) + 1);
      const ssize_t n = readlinkat(dirfd, name.c_str(), buf.data(), buf.size());
      en.content.assign(buf.data(), n > 0 ? static_cast<size_t>(n) : 0);
    } else if (S_ISDIR(st.st_mode)) {
      int sub = openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) {
        Snapshot(sub, rel + "/", out);
        close(sub);
      }
    }
    (*out)[rel] = en;
  }
  closedir(d);
}

inline std::map<std::string, Entry> Snapshot(const std::string& root) {
  std::map<std::string, Entry> out;
  int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    Snapshot(fd, "", &out);
    close(fd);
  }
  return out;
}

// The engines a test runs on, as usync_options flags: the rings alone, the
// thread pool, and the default (adaptive) engine; and their names.
inline constexpr uint32_t kEngineFlags[] = {USYNC_FORCE_URING, USYNC_FORCE_SYNC, 0};
inline std::string EngineName(uint32_t flags) {
  return flags == kEngineFlags[0] ? "uring" : flags == kEngineFlags[1] ? "sync" : "auto";
}

// io_uring instances this process has open.
inline std::vector<int> RingFds() {
  std::vector<int> out;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return out;
  while (const dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[256] = {};
    const std::string link = std::string("/proc/self/fd/") + e->d_name;
    if (readlink(link.c_str(), target, sizeof target - 1) > 0 && std::strcmp(target, "anon_inode:[io_uring]") == 0)
      out.push_back(std::stoi(e->d_name));
  }
  closedir(d);
  return out;
}

// Pages of the file at path that are in the page cache, and its page count.
inline std::pair<size_t, size_t> resident(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {0, 0};
  struct stat st {};
  fstat(fd, &st);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t pages = (static_cast<size_t>(st.st_size) + page - 1) / page;
  size_t in = 0;
  if (pages > 0) {
    void* map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
    if (map != MAP_FAILED) {
      std::vector<unsigned char> vec(pages);
      if (mincore(map, static_cast<size_t>(st.st_size), vec.data()) == 0)
        for (unsigned char v : vec) in += v & 1;
      munmap(map, static_cast<size_t>(st.st_size));
    }
  }
  close(fd);
  return {in, pages};
}

// Writes the file to disk and drops its pages from the cache.
inline bool evict(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = fsync(fd) == 0 && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0;
  close(fd);
  return ok && resident(path).first == 0;
}

// Makes the system call nr fail with EPERM in this thread and every thread
// it starts from now on, as a container's seccomp policy may; for a child
// process (InChild), so that the filter ends with it.  Calls made as
// io_uring operations are not filtered.  false: no filter could be set.
inline bool DenySyscall(int nr) {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(nr), 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

// Runs fn in a child process (so that limits and seccomp filters stay
// there); returns its exit status, or 128 + the signal that ended it.  No
// gtest assertions in fn: the child answers by its status.
template <typename Fn>
int InChild(Fn fn) {
  const pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace usync::testing
