// The --json events: each is one line of valid JSON with the documented fields.
#include "events.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <nlohmann/json.hpp>

namespace usync::cli::events {
namespace {

using nlohmann::json;

// Parses one event strictly (nlohmann refuses invalid UTF-8 when parsing).
json Parse(const std::string& line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one event, one line";
  json j = json::parse(line);
  EXPECT_EQ(j.at("schema"), kSchema);
  return j;
}

TEST(Events, Base64) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foob"), "Zm9vYg==");
  EXPECT_EQ(base64("bad\xff"), "YmFk/w==");
}

TEST(Events, ErrorNamesPathStepAndErrno) {
  usync_file_error e{"/s/dir/secret", "/d/dir/secret", EACCES, USYNC_STEP_OPEN_SRC};
  const json j = Parse(error(e, "/s", "/d"));
  EXPECT_EQ(j["type"], "error");
  EXPECT_EQ(j["path"], "dir/secret");
  EXPECT_EQ(j["side"], "src");
  EXPECT_EQ(j["src"], "/s/dir/secret");
  EXPECT_EQ(j["dst"], "/d/dir/secret");
  EXPECT_EQ(j["step"], 1);
  EXPECT_EQ(j["step_name"], "open source");
  EXPECT_EQ(j["errno"], EACCES);
  EXPECT_EQ(j["errno_name"], "EACCES");
  EXPECT_EQ(j["message"], "Permission denied");
  EXPECT_FALSE(j.contains("path_b64"));

  usync_file_error w{"/s/f", "/d/f", ENOSPC, USYNC_STEP_WRITE};  // destination side: relative to DST
  const json k = Parse(error(w, "/s", "/d"));
  EXPECT_EQ(k["path"], "f");
  EXPECT_EQ(k["side"], "dst");
  EXPECT_EQ(k["errno_name"], "ENOSPC");
}

// A name that is not UTF-8 still makes valid JSON; its bytes survive in *_b64.
TEST(Events, InvalidUtf8PathIsReplacedAndKeptInBase64) {
  usync_file_error e{"/s/bad\xff", "/d/bad\xff", EIO, USYNC_STEP_READ};
  const json j = Parse(error(e, "/s", "/d"));
  EXPECT_EQ(j["path"], "bad\xef\xbf\xbd");  // U+FFFD
  EXPECT_EQ(j["path_b64"], "YmFk/w==");
  EXPECT_EQ(j["src_b64"], base64("/s/bad\xff"));
  EXPECT_EQ(j["dst_b64"], base64("/d/bad\xff"));
  // Valid multi-byte UTF-8 is kept as it is, with no *_b64.
  usync_file_done d{"/s/caf\xc3\xa9", "/d/caf\xc3\xa9", 5, 0, {}, S_IFREG | 0640};
  const json f = Parse(file(d, "/s"));
  EXPECT_EQ(f["path"], "caf\xc3\xa9");
  EXPECT_FALSE(f.contains("path_b64"));
  EXPECT_EQ(f["kind"], "file");
  EXPECT_EQ(f["mode"], 0640);
  EXPECT_EQ(f["bytes"], 5);
  EXPECT_FALSE(f.contains("md5"));
}

TEST(Events, FileWithMd5) {
  usync_file_done d{"/s/a",
                    "/d/a",
                    0,
                    1,
                    {0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04, 0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8, 0x42, 0x7e},
                    S_IFREG | 0644};
  EXPECT_EQ(Parse(file(d, "/s"))["md5"], "d41d8cd98f00b204e9800998ecf8427e");
}

TEST(Events, Deletion) {
  usync_deletion d{"/d/old/dir", S_IFDIR | 0755};
  const json j = Parse(deletion(d, "/d", true));
  EXPECT_EQ(j["type"], "delete");
  EXPECT_EQ(j["path"], "old/dir");
  EXPECT_EQ(j["dst"], "/d/old/dir");
  EXPECT_EQ(j["kind"], "dir");
  EXPECT_EQ(j["dry_run"], true);
}

TEST(Events, EndCarriesEveryCounter) {
  usync_stats s{};
  s.files_found = 1;
  s.bytes_found = 2;
  s.files_done = 3;
  s.bytes_done = 4;
  s.files_failed = 5;
  s.files_excluded = 6;
  s.dirs_created = 7;
  s.symlinks_created = 8;
  s.specials_created = 9;
  s.elapsed_ns = 10;
  s.walk_done = 1;
  s.engine = USYNC_ENGINE_URING;
  s.workers = 13;
  s.queue_depth = 14;
  s.fd_budget = 15;
  s.buffer_bytes = 16;
  s.files_skipped = 17;
  s.temps_removed = 18;
  s.entries_deleted = 19;
  s.files_verified = 20;
  s.bytes_verified = 21;
  s.links_created = 22;
  s.files_inline = 23;
  s.files_unsized = 24;
  s.bytes_copied = 25;
  const json j = Parse(end(s, 1, 0, ""));
  EXPECT_EQ(j["type"], "end");
  EXPECT_EQ(j["exit_code"], 1);
  EXPECT_EQ(j["result"], "failures");
  EXPECT_FALSE(j.contains("error"));
  const json& st = j["stats"];
  EXPECT_EQ(st.size(), 25u) << "one field per usync_stats member";
  const char* counters[] = {"files_found",    "bytes_found",   "files_done",      "bytes_done",     "files_failed",
                            "files_excluded", "dirs_created",  "symlinks_created", "specials_created", "elapsed_ns"};
  for (size_t i = 0; i < std::size(counters); ++i) EXPECT_EQ(st[counters[i]], i + 1) << counters[i];
  EXPECT_EQ(st["walk_done"], true);
  EXPECT_EQ(st["engine"], "io_uring");
  EXPECT_EQ(st["entries_deleted"], 19);
  EXPECT_EQ(st["files_verified"], 20);
  EXPECT_EQ(st["bytes_verified"], 21);
  EXPECT_EQ(st["links_created"], 22);
  EXPECT_EQ(st["files_inline"], 23);
  EXPECT_EQ(st["files_unsized"], 24);
  EXPECT_EQ(st["bytes_copied"], 25);
  EXPECT_EQ(Parse(progress(s))["stats"], st);

  const json e = Parse(end(usync_stats{}, 2, ENOENT, "cannot copy"));
  EXPECT_EQ(e["result"], "error");
  EXPECT_EQ(e["error"]["errno_name"], "ENOENT");
  EXPECT_EQ(e["error"]["message"], "cannot copy");
  EXPECT_EQ(Parse(end(usync_stats{}, 130, 0, "interrupted"))["result"], "interrupted");
}

TEST(Events, StartListsOptions) {
  Options o;
  o.src = "/s\xff";
  o.dst = "/d";
  o.engine = "sync";
  o.excludes = {"*.tmp"};
  o.jobs = 3;
  std::vector<const char*> ptrs;
  const usync_options eo = engine_options(o, &ptrs);
  const json j = Parse(start(o, eo, USYNC_ENGINE_SYNC));
  EXPECT_EQ(j["type"], "start");
  EXPECT_EQ(j["src_b64"], base64("/s\xff"));
  EXPECT_EQ(j["engine"], "sync");
  EXPECT_EQ(j["engine_available"], "sync");
  EXPECT_EQ(j["options"]["jobs"], 3);
  EXPECT_EQ(j["options"]["excludes"], json::array({"*.tmp"}));
  EXPECT_EQ(j["options"]["preserve"], false);
  EXPECT_EQ(Parse(start(o, eo, 0))["engine_available"], nullptr);
}

}  // namespace
}  // namespace usync::cli::events
