// Mirror mode (USYNC_DELETE): removing what the destination has and the
// source does not.
//
// Runs on the walker thread, once per destination directory that existed
// before the run, after the source directory has been listed completely and
// before any of its files are queued (so a directory in the way of a file is
// gone before the file is published, and space is freed before it is used).
// A source listing that failed part way deletes nothing: an incomplete
// listing would look like missing entries.
//
// Removal never follows a symlink (a symlink is an entry like any other),
// never leaves the mount the destination root is on (a bind mount of the
// source inside the destination is refused, not emptied), and keeps our own
// temporaries (a concurrent run may be writing them; the cleaner removes
// stale ones).  Directory trees are removed children first with one
// descriptor per level for the first levels and, deeper, by reopening each
// parent through ".." with its identity checked, so any tree can be removed
// under any RLIMIT_NOFILE.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "job.h"

namespace usync {

// One entry of a source directory listing.
struct SourceName {
  std::string name;
  unsigned char type;  // d_type; DT_UNKNOWN is looked up when it matters
  // The destination may have this name: false only when delete_extras read
  // the destination directory whole and the name was not in it, so that
  // its file needs no quick check (a lookup of a missing name takes the
  // directory's lock, which the creates beside it wait for).
  bool in_dst = true;
};

// The mount a descriptor is on (statx STATX_MNT_ID), or 0 when unknown.
uint64_t mount_id(int fd) noexcept;

// Removes from d's destination directory each entry that `names` (the whole
// listing of d's source directory) lacks, or has as a directory where the
// destination has none or the other way round; entries matching an exclude
// pattern stay unless USYNC_DELETE_EXCLUDED.  rel is d's root-relative path
// (for patterns).  root_mnt is mount_id() of the destination root.  In a dry
// run only reports.  Failures are reported with USYNC_STEP_DELETE.
// everything: excluded entries go too (a directory a killed run was
// building: Dir::resumed).  Marks the names the destination directory does
// not have (SourceName::in_dst), when it could list it.
void delete_extras(Job& job, const Dir* d, std::vector<SourceName>& names, const std::string& rel,
                   uint64_t root_mnt, bool everything = false) noexcept;

}  // namespace usync
