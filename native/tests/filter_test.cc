#include "filter.h"

#include <gtest/gtest.h>

namespace usync {
namespace {

TEST(Glob, Basics) {
  EXPECT_TRUE(glob_match("*.jpg", "a.jpg"));
  EXPECT_FALSE(glob_match("*.jpg", "a.jpeg"));
  EXPECT_FALSE(glob_match("*.jpg", "d/a.jpg"));  // * stops at '/'
  EXPECT_TRUE(glob_match("?.txt", "a.txt"));
  EXPECT_FALSE(glob_match("?.txt", "ab.txt"));
  EXPECT_TRUE(glob_match("[a-c]x", "bx"));
  EXPECT_FALSE(glob_match("[a-c]x", "dx"));
  EXPECT_TRUE(glob_match("[!a-c]x", "dx"));
  EXPECT_TRUE(glob_match("[^a]x", "bx"));
  EXPECT_TRUE(glob_match("\\*", "*"));
  EXPECT_FALSE(glob_match("\\*", "a"));
  EXPECT_TRUE(glob_match("**/x", "a/b/x"));
  EXPECT_TRUE(glob_match("**/x", "x"));  // zero directories
  EXPECT_TRUE(glob_match("a/**", "a/b/c"));
  EXPECT_TRUE(glob_match("a/**/z", "a/b/c/z"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("a*b*c", "aXXbYYc"));
  EXPECT_FALSE(glob_match("a*b*c", "aXXbYY"));
  EXPECT_TRUE(glob_match("caf\xc3\xa9*", "caf\xc3\xa9.txt"));  // bytes, not characters
}

// Found by the randomized comparison (filter_fuzz_test.cc): a '**' after a
// '*' gave up instead of letting the '*' take more bytes.
TEST(Glob, StarBeforeDoubleStar) {
  EXPECT_TRUE(glob_match("*a**/x", "aax"));  // * = "a", **/ = nothing
  EXPECT_TRUE(glob_match("\\*[!a]*?***/[!]]", "*qbcb\xfe"));
  EXPECT_FALSE(glob_match("***/", "b"));  // "**/" is empty or ends in '/'
  EXPECT_TRUE(glob_match("***/", "b/"));
}

TEST(ExcludeFilter, DoubleStarMakesAPathPattern) {
  ExcludeFilter f;
  ASSERT_TRUE(f.add("x**a"));  // no '/', but '**': matched against the path, as in rsync
  EXPECT_TRUE(f.excluded("x.y/a", "a", false));
  EXPECT_FALSE(f.excluded("y/a", "a", false));
}

TEST(ExcludeFilter, NameAnywhere) {
  ExcludeFilter f;
  ASSERT_TRUE(f.add("*.tmp"));
  EXPECT_TRUE(f.excluded("a/b/x.tmp", "x.tmp", false));
  EXPECT_TRUE(f.excluded("x.tmp", "x.tmp", false));
  EXPECT_FALSE(f.excluded("a/x.tmpl", "x.tmpl", false));
}

TEST(ExcludeFilter, AnchoredAndSuffix) {
  ExcludeFilter f;
  ASSERT_TRUE(f.add("/top"));
  ASSERT_TRUE(f.add("cache/*.bin"));
  EXPECT_TRUE(f.excluded("top", "top", true));
  EXPECT_FALSE(f.excluded("a/top", "top", true));
  EXPECT_TRUE(f.excluded("x/cache/a.bin", "a.bin", false));
  EXPECT_TRUE(f.excluded("cache/a.bin", "a.bin", false));
  EXPECT_FALSE(f.excluded("xcache/a.bin", "a.bin", false));
}

TEST(ExcludeFilter, DirOnly) {
  ExcludeFilter f;
  ASSERT_TRUE(f.add("build/"));
  EXPECT_TRUE(f.excluded("a/build", "build", true));
  EXPECT_FALSE(f.excluded("a/build", "build", false));
}

TEST(ExcludeFilter, DoubleStar) {
  ExcludeFilter f;
  ASSERT_TRUE(f.add("/data/**/*.raw"));
  EXPECT_TRUE(f.excluded("data/x/y/z.raw", "z.raw", false));
  EXPECT_TRUE(f.excluded("data/z.raw", "z.raw", false));
  EXPECT_FALSE(f.excluded("other/data/z.raw", "z.raw", false));
}

TEST(ExcludeFilter, RejectsMalformed) {
  ExcludeFilter f;
  EXPECT_FALSE(f.add(""));
  EXPECT_FALSE(f.add("/"));
  EXPECT_FALSE(f.add("[abc"));
  EXPECT_FALSE(f.add("abc\\"));
  EXPECT_TRUE(f.empty());
}

}  // namespace
}  // namespace usync
