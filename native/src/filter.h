// Exclude patterns, rsync-style:
//   *  any run of bytes except '/'      ?  one byte except '/'
//   [a-z] [!abc] [^abc]  byte classes   ** any run of bytes including '/'
//   \x  the byte x literally
// A leading '/' anchors the pattern at the root of the copy; a trailing '/'
// makes it match directories only; a pattern with no '/' (and no '**') is
// matched against the entry's name at any depth; any other pattern is
// matched against the end of the root-relative path, at a '/' boundary.
// An excluded directory is pruned: nothing under it is read.
//
// Matching runs the pattern as a set of states over the text, so it takes
// O(pattern x text) time whatever the stars: no backtracking to explode.
#pragma once

#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace usync {

// True when text matches the glob (see above).  Both are byte strings.  A
// malformed class or a trailing lone '\' matches nothing.
bool glob_match(std::string_view pattern, std::string_view text) noexcept;

// A glob compiled once and matched many times.
class Glob {
 public:
  // Returns whether the pattern is well formed; a malformed piece (an
  // unterminated '[' class or a trailing lone '\') is kept as one that
  // matches nothing.
  bool compile(std::string_view pattern);
  // With at_any_component, the pattern may also start right after any '/'
  // of text (it then matches the end of a path at a component boundary).
  bool match(std::string_view text, bool at_any_component = false) const noexcept;

 private:
  // "**/" compiles to kSkipDirs, kStarStar, kByte '/': kSkipDirs consumes
  // nothing and leads both into the "**/" and past it (zero directories).
  enum class Kind : uint8_t { kByte, kAnyByte, kClass, kStar, kStarStar, kSkipDirs, kNever };
  struct Token {
    Kind kind;
    unsigned char byte;  // kByte
    uint32_t cls;        // kClass: index into classes_
  };
  std::vector<Token> tokens_;
  std::vector<std::bitset<256>> classes_;
};

class ExcludeFilter {
 public:
  // Returns false (and leaves the filter unchanged) for an empty or malformed
  // pattern (unterminated '[' class or a trailing lone '\').
  bool add(std::string_view pattern);
  bool empty() const noexcept { return rules_.empty(); }
  // rel_path: path relative to the copy root without a leading '/', e.g.
  // "a/b/c.jpg"; name: its last component.
  bool excluded(std::string_view rel_path, std::string_view name, bool is_dir) const noexcept;

 private:
  struct Rule {
    Glob glob;
    bool anchored = false;
    bool dir_only = false;
    bool whole_path = false;
  };
  std::vector<Rule> rules_;
};

}  // namespace usync
