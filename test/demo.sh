#!/usr/bin/env bash
# Demo: copy a tree of ~20K small files with uring-sync and with `cp -r`, check the uring-sync
# copy is identical to the source, and print both times and the ratio.
#
#   make demo                       # or: test/demo.sh
#   DEMO_FILES=50000 DEMO_DIRS=500 test/demo.sh
#
# As root the tree lives on a fresh tmpfs (warm, no disk noise); otherwise in mktemp -d.
# A single run on a shared machine is an illustration, not a benchmark: see `make bench`.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${URING_SYNC_BIN:-$repo/build/bin/uring-sync}
files=${DEMO_FILES:-20000}
dirs=${DEMO_DIRS:-200}

if [[ ! -x $bin ]]; then
  echo "demo: $bin not found: run 'make' first (or set URING_SYNC_BIN)" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/uring-sync-demo.XXXXXX")
mounted=0
cleanup() {
  if ((mounted)); then umount "$work" 2>/dev/null || umount -l "$work" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

where="$work (mktemp -d)"
if [[ $(id -u) -eq 0 ]] && mount -t tmpfs -o size=4g,mode=0755 uring-sync-demo "$work" 2>/dev/null; then
  mounted=1
  where="$work (fresh tmpfs)"
fi

now() { date +%s.%N; }

echo "demo: generating $files files (1-16 KiB) in $dirs directories on $where"
python3 - "$work/src" "$files" "$dirs" <<'EOF'
import os, random, sys
root, files, dirs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(20241124)
blob = rng.randbytes(1 << 20)
for d in range(dirs):
    os.makedirs(os.path.join(root, f"dir{d:04d}"), exist_ok=True)
for i in range(files):
    size = rng.randint(1024, 16 * 1024)
    off = rng.randrange(0, len(blob) - size)
    with open(os.path.join(root, f"dir{i % dirs:04d}", f"file{i:06d}.bin"), "wb") as f:
        f.write(blob[off:off + size])
EOF
bytes=$(du -sb "$work/src" | cut -f1)
echo "demo: source holds $(find "$work/src" -type f | wc -l) files, $((bytes / 1024 / 1024)) MiB"
sync

t0=$(now)
"$bin" "$work/src" "$work/uring" 2> "$work/uring.log" || { cat "$work/uring.log" >&2; exit 1; }
t1=$(now)
cp -r "$work/src" "$work/cp"
t2=$(now)

echo "demo: verifying the uring-sync copy (diff -r)"
if ! diff -r "$work/src" "$work/uring" > "$work/diff.log" 2>&1; then
  echo "demo: FAILED: the uring-sync copy differs from the source:" >&2
  head -20 "$work/diff.log" >&2
  exit 1
fi
src_n=$(find "$work/src" | wc -l)
dst_n=$(find "$work/uring" | wc -l)
if [[ $src_n != "$dst_n" ]]; then
  echo "demo: FAILED: $src_n entries in the source, $dst_n in the copy" >&2
  exit 1
fi

# Which engine ran (a dry run's -v summary names it; io_uring unless unavailable or forced off).
"$bin" -n -v "$work/src" "$work/dry" 2>&1 >/dev/null | grep -o 'engine: [a-z_]*' | tail -1 | sed 's/^/demo: uring-sync /' || true
awk -v t0="$t0" -v t1="$t1" -v t2="$t2" 'BEGIN {
  u = t1 - t0; c = t2 - t1
  printf "demo: uring-sync %.3f s\n", u
  printf "demo: cp -r      %.3f s\n", c
  printf "demo: uring-sync is %.2fx the speed of cp -r (copy identical: yes)\n", c / u
}'
