#include "cli.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "progress.h"

namespace usync::cli {
namespace {

std::optional<int> Parse(std::vector<const char*> args, Options* o, std::string* err_text = nullptr) {
  args.insert(args.begin(), "uring-sync");
  std::ostringstream out, err;
  auto r = parse(static_cast<int>(args.size()), args.data(), o, out, err);
  if (err_text != nullptr) *err_text = err.str() + out.str();
  return r;
}

// Started with stdin, stdout and stderr closed (`<&- >&- 2>&-`), the CLI
// must not let the copy's own descriptors take those numbers: a source or
// destination file at 2 would receive the error messages (and at 1 the -v
// list).  open_standard_fds puts /dev/null there first, and only there.
TEST(Cli, ClosedStandardDescriptorsAreNotReused) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int keep = dup(1);  // stays open: not touched
    close(0);
    close(1);
    close(2);
    open_standard_fds();
    int bad = 0;
    for (int fd = 0; fd <= 2; ++fd) {
      struct stat st {};
      if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) bad |= 1 << fd;
    }
    const int next = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (next <= 2) bad |= 8;
    struct stat ks {};
    if (fstat(keep, &ks) != 0 || S_ISCHR(ks.st_mode)) bad |= 16;
    _exit(bad);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "bits: 1, 2, 4 = fd 0, 1, 2 not /dev/null; 8 = a new descriptor below 3; "
                                       "16 = an open descriptor replaced";
}

TEST(Cli, DeleteFlags) {
  Options o;
  std::vector<const char*> ptrs;
  ASSERT_FALSE(Parse({"--delete", "a", "b"}, &o));
  uint32_t f = engine_options(o, &ptrs).flags;
  EXPECT_TRUE((f & USYNC_DELETE) && !(f & USYNC_DELETE_EXCLUDED));
  Options x;
  ASSERT_FALSE(Parse({"--delete-excluded", "a", "b"}, &x));  // implies --delete, as in rsync
  f = engine_options(x, &ptrs).flags;
  EXPECT_TRUE((f & USYNC_DELETE) && (f & USYNC_DELETE_EXCLUDED));
  Options n;
  ASSERT_FALSE(Parse({"a", "b"}, &n));
  EXPECT_FALSE(engine_options(n, &ptrs).flags & (USYNC_DELETE | USYNC_DELETE_EXCLUDED));
}

TEST(Cli, ParsesEveryOption) {
  Options o;
  ASSERT_FALSE(Parse({"-j", "3", "-c", "1M", "-q", "64", "-p", "-n", "-v", "--progress", "--exclude", "*.tmp",
                      "--exclude", "cache/", "--engine", "sync", "--fail-fast", "a", "b"},
                     &o));
  EXPECT_EQ(o.jobs, 3u);
  EXPECT_EQ(o.chunk_size, 1u << 20);
  EXPECT_EQ(o.queue_depth, 64u);
  EXPECT_TRUE(o.preserve && o.dry_run && o.verbose && o.progress && o.fail_fast);
  EXPECT_EQ(o.engine, "sync");
  EXPECT_EQ(o.excludes, (std::vector<std::string>{"*.tmp", "cache/"}));
  EXPECT_EQ(o.src, "a");
  EXPECT_EQ(o.dst, "b");
  std::vector<const char*> ptrs;
  usync_options eo = engine_options(o, &ptrs);
  EXPECT_EQ(eo.workers, 3u);
  EXPECT_EQ(eo.exclude_count, 2u);
  EXPECT_TRUE(eo.flags & USYNC_PRESERVE);
  EXPECT_TRUE(eo.flags & USYNC_FORCE_SYNC);
  EXPECT_TRUE(eo.flags & USYNC_DRY_RUN);
}

TEST(Cli, VerifyAndFsyncSetTheirFlags) {
  Options o;
  ASSERT_FALSE(Parse({"--verify", "--fsync", "a", "b"}, &o));
  EXPECT_TRUE(o.verify && o.fsync);
  std::vector<const char*> ptrs;
  usync_options eo = engine_options(o, &ptrs);
  EXPECT_TRUE(eo.flags & USYNC_VERIFY);
  EXPECT_TRUE(eo.flags & USYNC_FSYNC);
  Options plain;
  ASSERT_FALSE(Parse({"a", "b"}, &plain));
  eo = engine_options(plain, &ptrs);
  EXPECT_FALSE(eo.flags & (USYNC_VERIFY | USYNC_FSYNC));
  // Every flag the CLI sets is one this library knows.
  usync_engine* e = nullptr;
  eo = engine_options(o, &ptrs);
  eo.flags |= USYNC_DRY_RUN;
  ASSERT_EQ(usync_engine_create(&eo, &e), 0);
  usync_engine_destroy(e);
}

TEST(Cli, VerifyMismatchReadsAsSuch) {
  EXPECT_EQ(describe_error(USYNC_STEP_VERIFY, EBADMSG), "contents differ from the source; not copied");
  // EBADMSG elsewhere is a filesystem's checksum error (ext4's EFSBADCRC): say so plainly.
  EXPECT_EQ(describe_error(USYNC_STEP_READ, EBADMSG), std::strerror(EBADMSG));
  EXPECT_EQ(describe_error(USYNC_STEP_VERIFY, EIO), std::strerror(EIO));
}

TEST(Cli, UsageErrorsExitTwo) {
  Options o;
  std::string err;
  EXPECT_EQ(Parse({"onlyone"}, &o, &err), kExitUsage);
  EXPECT_EQ(Parse({"-c", "12Q", "a", "b"}, &o, &err), kExitUsage);
  EXPECT_NE(err.find("unit"), std::string::npos) << err;
  EXPECT_EQ(Parse({"-c", "1K", "a", "b"}, &o, &err), kExitUsage);  // below 4K
  EXPECT_EQ(Parse({"--engine", "fast", "a", "b"}, &o), kExitUsage);
  EXPECT_EQ(Parse({"-j", "0", "a", "b"}, &o), kExitUsage);
  EXPECT_EQ(Parse({"--bogus", "a", "b"}, &o), kExitUsage);
}

TEST(Cli, HelpAndVersionExitZero) {
  Options o;
  std::string text;
  EXPECT_EQ(Parse({"--help"}, &o, &text), kExitOk);
  EXPECT_NE(text.find("--queue-depth"), std::string::npos);
  EXPECT_EQ(Parse({"--version"}, &o, &text), kExitOk);
  EXPECT_NE(text.find(USYNC_PROJECT_VERSION), std::string::npos);
}

TEST(Cli, Sizes) {
  EXPECT_EQ(parse_size("128K"), 131072u);
  EXPECT_EQ(parse_size("128k"), 131072u);
  EXPECT_EQ(parse_size("2MiB"), 2u << 20);
  EXPECT_EQ(parse_size("4096"), 4096u);
  EXPECT_EQ(parse_size("1G"), 1u << 30);
  EXPECT_THROW(parse_size(""), std::invalid_argument);
  EXPECT_THROW(parse_size("K"), std::invalid_argument);
  EXPECT_THROW(parse_size("99999999999999999999"), std::invalid_argument);
}

// Found by cli_fuzz_test.cc: CLI11 reads integers in base 0 (octal, hex).
TEST(Cli, CountsAreDecimal) {
  Options o;
  ASSERT_FALSE(Parse({"-j", "010", "-q", "0064", "a", "b"}, &o));
  EXPECT_EQ(o.jobs, 10u);  // was 8
  EXPECT_EQ(o.queue_depth, 64u);  // was 52
  EXPECT_EQ(Parse({"-j", "0x10", "a", "b"}, &o), kExitUsage);  // was 16
  EXPECT_EQ(Parse({"--iowq-workers= 5", "a", "b"}, &o), kExitUsage);
  EXPECT_EQ(Parse({"-q", "+5", "a", "b"}, &o), kExitUsage);
}

// Found by cli_fuzz_test.cc: more than 18 digits were refused even when the
// value fits.
TEST(Cli, SizesWithManyDigits) {
  EXPECT_EQ(parse_size("0000000000000000004096"), 4096u);
  EXPECT_EQ(parse_size("1000000000000000000"), 1000000000000000000u);
  EXPECT_EQ(parse_size("18446744073709551615"), 18446744073709551615u);
  EXPECT_THROW(parse_size("18446744073709551616"), std::invalid_argument);
  EXPECT_THROW(parse_size("17179869184G"), std::invalid_argument);  // 2^64 bytes
}

TEST(Progress, RendersCountsRateAndEta) {
  usync_stats s{};
  s.files_found = 100;
  s.files_done = 50;
  s.bytes_found = 200 << 20;
  s.bytes_done = 100 << 20;
  s.elapsed_ns = 2000000000ull;
  s.walk_done = 1;
  const std::string line = render_progress(s, 120);
  EXPECT_NE(line.find("50/100 files"), std::string::npos) << line;
  EXPECT_NE(line.find("100.0 MiB"), std::string::npos) << line;
  EXPECT_NE(line.find("50.0 MiB/s"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA 0:02"), std::string::npos) << line;
  EXPECT_LE(line.size(), 120u);
  // 100 more files still unsized (queued without a stat): each counts as
  // the average sized one (2 MiB), so 300 MiB are left at 50 MiB/s.
  s.files_found = 200;
  s.files_unsized = 100;
  EXPECT_NE(render_progress(s, 120).find("ETA 0:06"), std::string::npos) << render_progress(s, 120);
  s.files_found = 100;
  s.files_unsized = 0;
  s.walk_done = 0;
  EXPECT_NE(render_progress(s, 120).find("50/100+ files"), std::string::npos);
  EXPECT_LE(render_progress(s, 30).size(), 30u);
}

// Not on a terminal (a log, a pipe): a line every 2 s, and the final state
// last, however soon after the previous line the copy ends, so a log never
// ends on counts the copy went past.
TEST(Progress, NotOnATerminalTheLastLineIsTheEnd) {
  FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  ProgressLine line(f);
  usync_stats s{};
  s.files_found = 6;
  s.walk_done = 1;
  s.elapsed_ns = 100000000ull;
  line.update(s);  // the first: printed
  s.files_done = 3;
  s.elapsed_ns = 500000000ull;
  line.update(s);  // within 2 s: not
  s.files_done = 6;
  s.elapsed_ns = 800000000ull;
  line.update(s, true);  // the end
  line.finish();
  std::rewind(f);
  std::string out;
  for (int c; (c = std::fgetc(f)) != EOF;) out += static_cast<char>(c);
  std::fclose(f);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2) << out;
  EXPECT_NE(out.find("0/6 files"), std::string::npos) << out;
  EXPECT_EQ(out.find("3/6 files"), std::string::npos) << out;
  EXPECT_NE(out.rfind("6/6 files"), std::string::npos) << out;
  EXPECT_GT(out.rfind("6/6 files"), out.find("0/6 files")) << out;
}

TEST(Cli, QuoteNameKeepsOneEntryPerLine) {
  EXPECT_EQ(quote_name("plain/name.txt"), "plain/name.txt");
  EXPECT_EQ(quote_name("two\nlines"), "two\\nlines");
  EXPECT_EQ(quote_name("tab\there"), "tab\\there");
  EXPECT_EQ(quote_name("back\\slash"), "back\\\\slash");
  EXPECT_EQ(quote_name(std::string("bell\a", 5)), "bell\\x07");
  EXPECT_EQ(quote_name("caf\xc3\xa9"), "caf\xc3\xa9");        // valid UTF-8 stays
  EXPECT_EQ(quote_name("bad\xff\xc3"), "bad\\xff\\xc3");      // invalid bytes are escaped
  EXPECT_EQ(quote_name("\xed\xa0\x80"), "\\xed\\xa0\\x80");   // a surrogate is not UTF-8
  EXPECT_EQ(quote_name("\xc0\xaf"), "\\xc0\\xaf");            // nor an overlong '/'
}

TEST(Cli, ExcludeTakesOneValueEach) {
  Options o;
  ASSERT_FALSE(Parse({"--exclude", "a", "src", "dst"}, &o));
  EXPECT_EQ(o.excludes, (std::vector<std::string>{"a"}));
  EXPECT_EQ(o.src, "src");
  EXPECT_EQ(o.dst, "dst");
}

TEST(Cli, BufferMemoryAndLibraryOptIns) {
  Options o;
  ASSERT_FALSE(Parse({"--buffer-memory", "16M", "-v", "a", "b"}, &o));
  std::vector<const char*> ptrs;
  const usync_options eo = engine_options(o, &ptrs);
  EXPECT_EQ(eo.buffer_budget, 16u << 20);
  EXPECT_TRUE(eo.flags & USYNC_ANNOUNCE_FALLBACK);
  EXPECT_TRUE(eo.flags & USYNC_RAISE_NOFILE);
  EXPECT_TRUE(eo.flags & USYNC_REPORT_ALL);
  EXPECT_EQ(Parse({"--buffer-memory", "1K", "a", "b"}, &o), kExitUsage);
}

TEST(Cli, JsonFlag) {
  Options o;
  ASSERT_FALSE(Parse({"--json", "a", "b"}, &o));
  EXPECT_TRUE(o.json);
  Options d;
  ASSERT_FALSE(Parse({"a", "b"}, &d));
  EXPECT_FALSE(d.json);
}

TEST(Cli, RelativeAndUtf8) {
  EXPECT_EQ(relative("/s/a/b", "/s"), "a/b");
  EXPECT_EQ(relative("/s/a/b", "/s/"), "a/b");
  EXPECT_EQ(relative("/s2/a", "/s"), "/s2/a");  // a sibling with the same prefix is not below
  EXPECT_EQ(relative("/s", "/s"), "/s");
  EXPECT_TRUE(valid_utf8("caf\xc3\xa9"));
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_FALSE(valid_utf8("bad\xff"));
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));
  EXPECT_FALSE(valid_utf8("\xc3"));  // truncated
}

}  // namespace
}  // namespace usync::cli
