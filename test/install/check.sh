#!/usr/bin/env bash
# make test-install: `make install` into a temporary DESTDIR, then use what was
# installed the way a user would — the CLI, the man page, the completions, and
# a C program built with pkg-config (shared and fully static) — then check that
# `make uninstall` takes every file away again.
#
# It also fails when the documentation drifts from the CLI: every option that
# `uring-sync --help` prints must have an entry in the man page's OPTIONS and
# appear in both completions, and the completions must offer no option the CLI
# lacks.  Adding an option to cmd/uring-sync/cli.cc therefore means updating
# cmd/uring-sync/uring-sync.1.scd, uring-sync.bash and _uring-sync too.
# No pipefail: `... | grep -q` may end its writer early, which is no failure.
set -eu

cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
MAKE=${MAKE:-make}
PREFIX=/opt/uring-sync-test
LIBDIR=lib
MAN_SRC=cmd/uring-sync/uring-sync.1.scd

tmp=$(mktemp -d)
manifest=$BUILD/install_manifest.txt
# A real `make install` from this build directory keeps its manifest (and so
# its `make uninstall`).
[[ -f $manifest ]] && cp "$manifest" "$tmp/manifest.saved"
restore() {
  if [[ -f $tmp/manifest.saved ]]; then cp "$tmp/manifest.saved" "$manifest"; else rm -f "$manifest"; fi
  rm -rf "$tmp"
}
trap restore EXIT

failures=0 mark=0 groups_ok=0 groups_failed=0
fail() {
  echo "test-install: FAIL: $*" >&2
  failures=$((failures + 1))
}
pass() { # ends a group of checks: "ok" when none of them failed since the last group
  if ((failures == mark)); then
    echo "test-install: ok: $*"
    groups_ok=$((groups_ok + 1))
  else
    groups_failed=$((groups_failed + 1))
  fi
  mark=$failures
}

dest=$tmp/root
root=$dest$PREFIX
"$MAKE" -s --no-print-directory install BUILD="$BUILD" DESTDIR="$dest" PREFIX="$PREFIX" LIBDIR="$LIBDIR" >"$tmp/install.log" ||
  { cat "$tmp/install.log"; fail "make install"; exit 1; }

# --- every file in its place
version=$(sed -n 's/^project(uring-sync VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
major=${version%%.*}
# Before 1.0 the SONAME carries the minor version too (CMakeLists.txt).
if [[ $major == 0 ]]; then soname=liburingsync.so.${version%.*}; else soname=liburingsync.so.$major; fi
expected=(
  bin/uring-sync
  "$LIBDIR/liburingsync.so.$version"
  "$LIBDIR/$soname"
  "$LIBDIR/liburingsync.so"
  "$LIBDIR/liburingsync.a"
  include/uringsync/uringsync.h
  "$LIBDIR/pkgconfig/uringsync.pc"
  share/man/man1/uring-sync.1
  share/bash-completion/completions/uring-sync
  share/zsh/site-functions/_uring-sync
)
for f in "${expected[@]}"; do
  [[ -e $root/$f ]] || fail "not installed: $PREFIX/$f"
done
extra=$(cd "$dest" && find . \( -type f -o -type l \) | sed 's|^\.||' | sort |
  grep -vxF -f <(printf "$PREFIX/%s\n" "${expected[@]}") || true)
[[ -z $extra ]] || fail "installed but not expected: $extra"
[[ $(readlink "$root/$LIBDIR/liburingsync.so") == "$soname" ]] || fail "liburingsync.so does not point to $soname"
[[ $(readlink "$root/$LIBDIR/$soname") == "liburingsync.so.$version" ]] || fail "$soname does not point to liburingsync.so.$version"
readelf -d "$root/$LIBDIR/liburingsync.so.$version" | grep -q "SONAME.*\[$soname\]" || fail "SONAME is not $soname"
if readelf -d "$root/bin/uring-sync" "$root/$LIBDIR/liburingsync.so.$version" | grep -E 'RPATH|RUNPATH'; then
  fail "an installed binary keeps a run path (into the build tree?)"
fi
pass "files in place under DESTDIR$PREFIX"

# --- the CLI
out=$("$root/bin/uring-sync" --version) || fail "installed uring-sync --version exited $?"
[[ $out == "uring-sync $version" ]] || fail "installed uring-sync --version printed '$out', expected 'uring-sync $version'"
pass "$PREFIX/bin/uring-sync --version: $out"

# --- pkg-config and a C program against the installed library
export PKG_CONFIG_PATH=$root/$LIBDIR/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
unset PKG_CONFIG_LIBDIR
for v in prefix:$PREFIX libdir:$PREFIX/$LIBDIR includedir:$PREFIX/include; do
  got=$(PKG_CONFIG_SYSROOT_DIR='' pkg-config --variable="${v%%:*}" uringsync)
  [[ $got == "${v#*:}" ]] || fail "uringsync.pc: ${v%%:*}=$got, expected ${v#*:}"
done
mkdir -p "$tmp/tree/sub"
echo "hello from the installed library" >"$tmp/tree/hello"
echo deeper >"$tmp/tree/sub/file"

# shellcheck disable=SC2046  # pkg-config output is a list of words
cc -Wall -Wextra -Werror test/install/consumer.c $(pkg-config --cflags --libs uringsync) -o "$tmp/consumer" ||
  fail "compile and link with pkg-config --cflags --libs uringsync"
if [[ -x $tmp/consumer ]]; then
  readelf -d "$tmp/consumer" | grep -q "NEEDED.*\[$soname\]" || fail "the pkg-config build does not use $soname"
  LD_LIBRARY_PATH=$root/$LIBDIR "$tmp/consumer" "$tmp/tree" "$tmp/copy-shared" >/dev/null ||
    fail "the program linked against the shared library"
fi
pass "uringsync.pc; C program with pkg-config --cflags --libs uringsync"

# -static makes the linker take every library from an archive, so this fails
# if Libs.private / Requires.private miss anything liburingsync.a needs.
# (libcrypto.a warns that glibc's dlopen/getaddrinfo need shared libraries at
# run time; the log is shown only on failure.)
# shellcheck disable=SC2046
if cc -static test/install/consumer.c $(pkg-config --static --cflags --libs uringsync) -o "$tmp/consumer-static" \
  2>"$tmp/static.log"; then
  readelf -d "$tmp/consumer-static" 2>/dev/null | grep -q NEEDED && fail "the -static build is still dynamic"
  "$tmp/consumer-static" "$tmp/tree" "$tmp/copy-static" >/dev/null || fail "the statically linked program"
else
  cat "$tmp/static.log" >&2
  fail "link -static with pkg-config --static --cflags --libs uringsync"
fi
pass "C program with pkg-config --static (fully static)"

# --- the man page: found under the prefix, renders without a troff warning
page=$root/share/man/man1/uring-sync.1
[[ $(man -M "$root/share/man" -w uring-sync) == "$page" ]] || fail "man -M $PREFIX/share/man does not find uring-sync(1)"
rendered=$(MANWIDTH=80 man --warnings -l "$page" 2>"$tmp/man.err") || fail "man -l $page"
[[ -s $tmp/man.err ]] && fail "man -l $page: $(cat "$tmp/man.err")"
for section in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" ENVIRONMENT EXAMPLES "SEE ALSO"; do
  grep -qx "$section" <<<"$rendered" || fail "uring-sync(1) has no $section section"
done
grep -q URING_SYNC_FORCE_SYNC <<<"$rendered" || fail "uring-sync(1) does not mention URING_SYNC_FORCE_SYNC"
pass "man -l renders uring-sync(1)"

# --- the completions work
bash_comp=$root/share/bash-completion/completions/uring-sync
zsh_comp=$root/share/zsh/site-functions/_uring-sync
complete_bash() { # words...: what the completion offers for the last word
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _uring_sync; printf "%s\n" "${COMPREPLY[@]}"' \
    _ "$bash_comp" "$@"
}
[[ $(complete_bash uring-sync --eng) == --engine ]] || fail "bash: '--eng' does not complete to --engine"
[[ $(complete_bash uring-sync --engine '' | sort | xargs) == "auto sync uring" ]] ||
  fail "bash: --engine does not offer auto, uring, sync"
[[ $(cd "$tmp/tree" && complete_bash uring-sync -p s) == sub ]] || fail "bash: SRC does not complete paths"
zsh -n "$zsh_comp" || fail "zsh cannot parse $zsh_comp"
pass "bash completion completes; zsh completion parses"

# --- drift: every option of --help documented and completed, and no stale ones
help=$("$root/bin/uring-sync" --help) || fail "installed uring-sync --help exited $?"
# Option lines start with two spaces and a dash: "  -j,--jobs UINT ...".
mapfile -t options < <(sed -n 's/^  \(-[^ ]*\).*/\1/p' <<<"$help" | tr ',' '\n')
[[ ${#options[@]} -ge 10 ]] || fail "read only ${#options[@]} options from uring-sync --help"
word() { grep -qE -- "(^|[^[:alnum:]-])$1(\$|[^[:alnum:]-])" "$2"; }
for opt in "${options[@]}"; do
  missing=()
  # An OPTIONS entry in the scdoc source is a line like "*-j*, *--jobs* _N_".
  grep -E '^\*-' "$MAN_SRC" | grep -qF -- "*$opt*" || missing+=("the man page ($MAN_SRC, an OPTIONS entry)")
  word "$opt" cmd/uring-sync/uring-sync.bash || missing+=("the bash completion (cmd/uring-sync/uring-sync.bash)")
  word "$opt" cmd/uring-sync/_uring-sync || missing+=("the zsh completion (cmd/uring-sync/_uring-sync)")
  for m in "${missing[@]}"; do fail "uring-sync --help lists $opt, but it is missing from $m"; done
done
# Value sets such as "--engine TEXT:{auto,uring,sync}".
while read -r opt values; do
  for v in ${values//,/ }; do
    for f in "$MAN_SRC" cmd/uring-sync/uring-sync.bash cmd/uring-sync/_uring-sync; do
      word "$v" "$f" || fail "uring-sync --help allows $opt $v, but $f does not mention '$v'"
    done
  done
done < <(sed -n 's/^  .*\(--[a-z0-9-]*\) [A-Z]*:{\([^}]*\)}.*/\1 \2/p' <<<"$help")
for f in "$MAN_SRC" cmd/uring-sync/uring-sync.bash cmd/uring-sync/_uring-sync; do
  if [[ $f == "$MAN_SRC" ]]; then listed=$(grep -E '^\*-' "$f"); else listed=$(grep -v '^ *#' "$f"); fi
  for opt in $(grep -oE -- '(^|[^[:alnum:]-])--[a-z][a-z0-9-]*' <<<"$listed" | sed 's/^[^-]*//' | sort -u); do
    printf '%s\n' "${options[@]}" | grep -qxF -- "$opt" ||
      fail "$f offers $opt, which uring-sync --help does not list (removed or renamed?)"
  done
done
pass "${#options[@]} options of --help are in the man page and both completions"

# --- make uninstall leaves nothing behind
"$MAKE" -s --no-print-directory uninstall BUILD="$BUILD" DESTDIR="$dest" PREFIX="$PREFIX" >/dev/null ||
  fail "make uninstall"
left=$(cd "$dest" && find . \( -type f -o -type l \) -printf '%P\n')
[[ -z $left ]] || fail "make uninstall left: $left"
[[ ! -e $root/include/uringsync ]] || fail "make uninstall left $PREFIX/include/uringsync/"
pass "make uninstall removed every installed file"

echo "test-install: $groups_ok passed, $groups_failed failed"
((failures == 0))
