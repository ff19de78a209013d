// Exclude patterns, rsync-style:
//   *  any run of bytes except '/'      ?  one byte except '/'
//   [a-z] [!abc] [^abc]  byte classes   ** any run of bytes including '/'
//   \x  the byte x literally
// A leading '/' anchors the pattern at the root of the copy; a trailing '/'
// makes it match directories only; a pattern with no '/' (and no '**') is
// matched against the entry's name at any depth; any other pattern is
// matched against the end of the root-relative path, at a '/' boundary.
// An excluded directory is pruned: nothing under it is read.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace usync {

// True when text matches the glob (see above).  Both are byte strings.
bool glob_match(std::string_view pattern, std::string_view text) noexcept;

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
    std::string glob;
    bool anchored = false;
    bool dir_only = false;
    bool whole_path = false;
  };
  std::vector<Rule> rules_;
};

}  // namespace usync
