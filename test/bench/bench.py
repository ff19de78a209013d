#!/usr/bin/env python3
"""Benchmark harness: uring-sync against its peers on seeded datasets.

    make bench                                  # full run (as root): see --help
    python3 test/bench/bench.py --quick         # ~1 minute smoke run
    python3 test/bench/bench.py --datasets small4k --conditions cold --tools cp-r,uring-sync --reps 3

What it does, per DESIGN.md's traps:
  * datasets are generated from a fixed seed (same names, sizes and bytes every time);
  * warm: the source sits on a tmpfs; cold: the source sits on an ext4 image loop-mounted
    read-only from a file on the disk, and `sync; echo 3 > /proc/sys/vm/drop_caches` runs before
    each timed run;
  * every timed run copies into a FRESH destination filesystem (a new tmpfs, or with the
    ext4-dst condition a new ext4 made with mkfs on /dev/shm), mounted before and unmounted
    after the run, outside the timing;
  * tools are interleaved (A B C A B C ...), each run N times; medians, min and max, and the
    ratio to `cp -r` are reported, with user+sys CPU and peak RSS from wait4's rusage;
  * every run is verified afterwards (file and directory counts, bytes, a sample of contents);
  * the Rust peers (cpz, fcp, xcp) are built at pinned versions into build/bench/cargo (--deps);
  * scenarios (--scenarios) time what is not a first copy, each as a ratio to a full copy by the
    same tool in the same rep: a no-op re-run into a complete copy (uring-sync, rsync -a, rclone
    copy), the re-run that completes a copy SIGKILLed half-way, and uring-sync --verify / --fsync
    (reported as not available while the binary's --help does not list them).
Results go to build/bench/results.json; report.py renders them as Markdown (stdout and
build/bench/results.md) and a chart (build/bench/results.png).
All mounts are undone on exit, Ctrl-C and SIGTERM included.

Python 3 standard library only. Needs root (mount, drop_caches) unless --no-mount.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import errno
import hashlib
import json
import math
import mmap
import os
import platform
import random
import shutil
import signal
import stat
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Iterator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report as report_md  # noqa: E402  (test/bench/report.py: tables, chart, README table)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Datasets. Each is a seeded list of (relative path, size); add new ones to DATASETS.
# --------------------------------------------------------------------------------------------

_LISTINGS: dict[str, list[tuple[str, int]]] = {}
_TOTALS: dict[str, tuple[int, int, int]] = {}


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    entries: Callable[[random.Random], Iterator[tuple[str, int]]]
    seed: int = 20241124

    def listing(self) -> list[tuple[str, int]]:
        if self.name not in _LISTINGS:
            _LISTINGS[self.name] = list(self.entries(random.Random(self.seed)))
        return _LISTINGS[self.name]

    def key(self) -> str:
        """Changes whenever the dataset's names or sizes change (cache key for images)."""
        h = hashlib.sha256()
        for rel, size in self.listing():
            h.update(f"{rel}\0{size}\n".encode())
        h.update(CONTENT_VERSION.encode())
        return h.hexdigest()[:16]


def uniform(files: int, dirs: int, size: int) -> Callable[[random.Random], Iterator[tuple[str, int]]]:
    def gen(_: random.Random) -> Iterator[tuple[str, int]]:
        for i in range(files):
            yield (f"d{i % dirs:04d}/f{i:07d}", size) if dirs > 1 else (f"f{i:07d}", size)
    return gen


def lognormal(files: int, dirs: int, median: int, sigma: float, cap: int) -> Callable[[random.Random], Iterator[tuple[str, int]]]:
    def gen(rng: random.Random) -> Iterator[tuple[str, int]]:
        for i in range(files):
            size = min(cap, int(rng.lognormvariate(math.log(median), sigma)))
            d = i % dirs
            yield f"g{d // 16:03d}/d{d:04d}/f{i:07d}", size
    return gen


def binary_tree(depth: int, per_dir: int, size: int) -> Callable[[random.Random], Iterator[tuple[str, int]]]:
    """A directory tree `depth` levels deep, two subdirectories per directory, `per_dir` files in
    every directory (the root included): deep, narrow paths."""
    def gen(_: random.Random) -> Iterator[tuple[str, int]]:
        i = 0
        level = [""]
        for d in range(depth + 1):
            for parent in level:
                for _ in range(per_dir):
                    yield f"{parent}f{i:07d}", size
                    i += 1
            level = [f"{p}n{d:02d}{b}/" for p in level for b in "ab"]
    return gen


DATASETS: dict[str, Dataset] = {d.name: d for d in [
    Dataset("small4k", "100K x 4 KiB in 100 dirs", uniform(100_000, 100, 4 * KIB)),
    Dataset("quick", "10K x 4 KiB in 10 dirs (smoke runs)", uniform(10_000, 10, 4 * KIB)),
    Dataset("mixed", "50K log-normal around 100 KiB in 200 dirs", lognormal(50_000, 200, 100 * KIB, 1.0, 64 * MIB)),
    Dataset("flat", "100K x 4 KiB in one dir", uniform(100_000, 1, 4 * KIB)),
    Dataset("deep-narrow", "32K x 4 KiB, 16 in every dir of a binary tree 10 levels deep (2047 dirs)",
            binary_tree(10, 16, 4 * KIB)),
    Dataset("large", "16 x 256 MiB", uniform(16, 1, 256 * MIB)),
    Dataset("tiny1m", "1M x 512 B in 1000 dirs", uniform(1_000_000, 1000, 512)),
]}

CONTENT_VERSION = "blob-v1"


class Content:
    """Seeded, incompressible-looking file bytes: slices of a 4 MiB random blob."""

    def __init__(self, seed: int):
        self.blob = random.Random(seed ^ 0x5EED).randbytes(4 * MIB)

    def write(self, path: str, index: int, size: int) -> None:
        with open(path, "wb") as f:
            off = (index * 7919) % (len(self.blob) // 2)
            while size > 0:
                n = min(size, len(self.blob) - off)
                f.write(self.blob[off:off + n])
                size -= n
                off = 0

    def expected(self, index: int, size: int) -> bytes:
        off = (index * 7919) % (len(self.blob) // 2)
        out = bytearray()
        while size > 0:
            n = min(size, len(self.blob) - off)
            out += self.blob[off:off + n]
            size -= n
            off = 0
        return bytes(out)


def generate(ds: Dataset, root: str) -> None:
    t0 = time.perf_counter()
    content = Content(ds.seed)
    made = set()
    for i, (rel, size) in enumerate(ds.listing()):
        d = os.path.dirname(rel)
        if d not in made:
            os.makedirs(os.path.join(root, d), exist_ok=True)
            made.add(d)
        content.write(os.path.join(root, rel), i, size)
    log(f"generated {ds.name} ({ds.description}) in {time.perf_counter() - t0:.1f} s")


def dataset_totals(ds: Dataset) -> tuple[int, int, int]:
    """(files, dirs below the root, bytes)."""
    if ds.name in _TOTALS:
        return _TOTALS[ds.name]
    listing = ds.listing()
    dirs = set()
    for rel, _ in listing:
        d = os.path.dirname(rel)
        while d:
            dirs.add(d)
            d = os.path.dirname(d)
    _TOTALS[ds.name] = len(listing), len(dirs), sum(s for _, s in listing)
    return _TOTALS[ds.name]


# --------------------------------------------------------------------------------------------
# Mounts, always undone.
# --------------------------------------------------------------------------------------------

def sh(*argv: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, stdout=subprocess.PIPE if quiet else None,
                          stderr=subprocess.PIPE if quiet else None, text=True)


class Mounts:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.stack: list[str] = []

    def tmpfs(self, path: str, size: int) -> None:
        os.makedirs(path, exist_ok=True)
        if not self.enabled:
            return
        sh("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755,nr_inodes=0", "uring-sync-bench", path)
        self.stack.append(path)

    def ext4_image(self, image: str, path: str, readonly: bool) -> None:
        os.makedirs(path, exist_ok=True)
        opts = "loop,noatime" + (",ro" if readonly else "")
        sh("mount", "-t", "ext4", "-o", opts, image, path)
        self.stack.append(path)

    def umount(self, path: str) -> None:
        if path not in self.stack:
            return
        r = sh("umount", path, check=False, quiet=True)
        if r.returncode != 0:
            log(f"umount {path} failed ({r.stderr.strip()}); detaching lazily")
            sh("umount", "-l", path, check=False, quiet=True)
        self.stack.remove(path)

    def cleanup(self) -> None:
        for path in reversed(list(self.stack)):
            self.umount(path)


def mkfs_ext4(image: str, size: int, inodes: int) -> None:
    with open(image, "wb") as f:
        f.truncate(size)
    # No lazy inode-table/journal init: the kernel would otherwise do it in the background
    # during the timed runs.
    sh("mkfs.ext4", "-F", "-q", "-N", str(inodes), "-E", "lazy_itable_init=0,lazy_journal_init=0", image)


def fs_size(ds: Dataset) -> tuple[int, int]:
    """(bytes, inodes) a filesystem holding one copy of ds needs, with headroom."""
    files, dirs, total = dataset_totals(ds)
    blocks = sum(max(1, -(-s // 4096)) * 4096 for _, s in ds.listing())
    return int(blocks * 1.15) + (files + dirs) * 512 + 256 * MIB, files + dirs + 4096


def drop_caches() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


# --------------------------------------------------------------------------------------------
# Tools.
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Tool:
    name: str
    label: str
    argv: Callable[[str, str], list[str]]
    dst_must_exist: bool = False
    verify: bool = True   # file/dir counts, bytes and sampled contents checked after each run
    env: dict[str, str] = dataclasses.field(default_factory=dict)


def build_floor() -> str | None:
    """Compiles floor.c (the DESIGN.md syscall floor) into build/bench; None without a compiler."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "floor.c")
    out = os.path.join(REPO, "build", "bench", "floor")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
        return out
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or subprocess.run([cc, "-O2", "-pthread", "-o", out, src]).returncode != 0:
        return None
    return out


def make_tools(bin_path: str, rclone: str | None, base_bin: str | None = None) -> dict[str, Tool]:
    nproc = str(os.cpu_count() or 2)
    floor = build_floor()
    tools = [
        Tool("cp-r", "cp -r", lambda s, d: ["cp", "-r", s, d]),
        Tool("cp-a", "cp -a", lambda s, d: ["cp", "-a", s, d]),
        Tool("tar", "tar cf - | tar xf -",
             lambda s, d: ["sh", "-c", 'tar -C "$1" -cf - . | tar -C "$2" -xf -', "sh", s, d], dst_must_exist=True),
        Tool("rsync", "rsync -a", lambda s, d: ["rsync", "-a", s + "/", d + "/"]),
        Tool("rsync-aHAXS", "rsync -aHAXS", lambda s, d: ["rsync", "-aHAXS", s + "/", d + "/"]),
        Tool("xargs-cp", f"find | xargs -P{nproc} cp",
             lambda s, d: ["sh", "-c",
                           'cd "$1" && find . -type d -print0 | (cd "$2" && xargs -0 mkdir -p) && '
                           f'find . -type f -print0 | xargs -0 -P{nproc} -n 1000 cp --parents -t "$2"',
                           "sh", s, d], dst_must_exist=True),
        Tool("uring-sync", "uring-sync", lambda s, d: [bin_path, s, d]),
        Tool("uring-sync-j1", "uring-sync -j1", lambda s, d: [bin_path, "-j1", s, d]),
        Tool("uring-sync-a", "uring-sync -a", lambda s, d: [bin_path, "-a", s, d]),
        Tool("uring-sync-sync", "uring-sync --engine=sync", lambda s, d: [bin_path, "--engine=sync", s, d]),
        Tool("uring-sync-uring", "uring-sync --engine=uring", lambda s, d: [bin_path, "--engine=uring", s, d]),
    ]
    if base_bin:
        # An older build timed in the same run, interleaved with the rest: a regression check
        # that no drift of the machine between two runs can fake or hide.
        tools.append(Tool("uring-sync-base", f"uring-sync, baseline ({os.path.basename(base_bin)})",
                          lambda s, d: [base_bin, s, d]))
    for binary, (_, version) in CARGO_PEERS.items():
        path = os.path.join(CARGO_ROOT, "bin", binary)
        recursive = ["-r"] if binary == "xcp" else []
        tools.append(Tool(binary, f"{binary} {version}", lambda s, d, p=path, r=recursive: [p, *r, s, d]))
    if floor:
        tools.append(Tool("floor", f"syscall floor ({nproc} threads)", lambda s, d: [floor, s, d, nproc]))
    if rclone:
        tools += [
            Tool("rclone", "rclone copy (local)", lambda s, d: [rclone, "copy", s, d], env={"RCLONE_CONFIG": "/dev/null"}),
            Tool("rclone-uring", "rclone copy (uring)", lambda s, d: [rclone, "copy", ":uring:" + s, ":uring:" + d],
                 env={"RCLONE_CONFIG": "/dev/null"}),
            Tool("rclone-copytree", "rclone backend copytree", lambda s, d: [rclone, "backend", "copytree",
                 ":uring:" + s, d], env={"RCLONE_CONFIG": "/dev/null"}),
        ]
    return {t.name: t for t in tools}


DEFAULT_TOOLS = ["cp-r", "cp-a", "tar", "rsync", "rsync-aHAXS", "floor", "cpz", "fcp", "xcp", "uring-sync",
                 "uring-sync-a", "uring-sync-uring", "rclone", "rclone-uring", "rclone-copytree"]


# `make bench`'s plan (--plan full): the performance issue's table, each dataset under the
# conditions that say something about it, each with the tools worth timing there.  A peer that
# takes minutes where it says nothing new (rclone on 1M files, cp -a next to cp -r) is left out of
# that cell only; scenarios run on small4k warm.
ENGINES = ["uring-sync", "uring-sync-uring", "uring-sync-sync"]
PEERS = ["cpz", "fcp", "xcp"]
FULL_PLAN = [
    ("small4k", "warm", DEFAULT_TOOLS + ["uring-sync-sync"], True),
    ("small4k", "ext4-dst", ["cp-r", "tar", "floor"] + PEERS + ENGINES + ["rclone", "rclone-uring", "rclone-copytree"],
     False),
    ("small4k", "pagecache", ["cp-r", "tar", "floor"] + PEERS + ENGINES, False),
    ("small4k", "cold-disk", ["cp-r", "tar"] + PEERS + ENGINES + ["rclone", "rclone-uring", "rclone-copytree"], False),
    ("mixed", "cold-disk", ["cp-r", "tar"] + PEERS + ENGINES, False),
    ("deep-narrow", "cold-disk", ["cp-r", "tar"] + PEERS + ENGINES, False),
    ("flat", "warm", ["cp-r", "tar", "floor"] + PEERS + ENGINES, False),
    ("tiny1m", "warm", ["tar", "floor", "cpz", "xcp"] + ENGINES, False),
]


def parse_plan(text: str, datasets: str, conditions: str, tools: list[str]) -> list[tuple[str, str, list[str], bool]]:
    """The (dataset, condition, tools, scenarios?) cells to run, in order.  '' is every dataset
    under every condition with every tool (the cross product of --datasets and --conditions);
    'full' is FULL_PLAN; otherwise a comma list of DATASET:CONDITION, each with every tool."""
    if text == "":
        return [(d, c, tools, True) for d in datasets.split(",") if d for c in conditions.split(",") if c]
    if text == "full":
        return [(d, c, [t for t in ts if t in tools], sc) for d, c, ts, sc in FULL_PLAN]
    cells = []
    for item in text.split(","):
        d, sep, c = item.partition(":")
        if not sep or d not in DATASETS or c not in CONDITIONS:
            raise ValueError(f"--plan: {item!r} is not DATASET:CONDITION (--list shows them)")
        cells.append((d, c, tools, True))
    return cells


# Rust peers, built by `cargo install --locked` at pinned versions into build/bench/cargo.
CARGO_ROOT = os.path.join(REPO, "build", "bench", "cargo")
CARGO_PEERS: dict[str, tuple[str, str]] = {  # binary -> (crate, version)
    "cpz": ("cpz", "3.2.1"),   # SUPERCILEX/fuc
    "fcp": ("fcp", "0.2.2"),
    "xcp": ("xcp", "0.24.9"),
}
# Debian packages the harness uses: binary -> package.
APT_DEPS = {"rsync": "rsync", "fio": "fio", "gnuplot": "gnuplot-nox", "/usr/bin/time": "time"}


def ensure_apt(binary: str, install: bool = True) -> bool:
    """True when `binary` is there, after installing its Debian package (as root) if it was not."""
    if shutil.which(binary):
        return True
    if not install or os.geteuid() != 0:
        return False
    pkg = APT_DEPS[binary]
    log(f"{binary} missing: apt-get install -y {pkg}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    ok = subprocess.run(["apt-get", "install", "-y", "-q", pkg], env=env, **quiet).returncode == 0
    if not ok:  # a machine that never ran apt-get update has no package lists
        subprocess.run(["apt-get", "update", "-q"], env=env, **quiet)
        ok = subprocess.run(["apt-get", "install", "-y", "-q", pkg], env=env, **quiet).returncode == 0
    return ok and shutil.which(binary) is not None


def cargo_peer_ok(binary: str) -> bool:
    path = os.path.join(CARGO_ROOT, "bin", binary)
    try:
        r = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return CARGO_PEERS[binary][1] in r.stdout + r.stderr


def ensure_cargo_peer(binary: str, install: bool = True) -> bool:
    """True when build/bench/cargo/bin/<binary> is the pinned version, after `cargo install` if not."""
    if cargo_peer_ok(binary):
        return True
    if not install:
        return False
    cargo = shutil.which("cargo") or os.path.expanduser("~/.cargo/bin/cargo")
    if not os.access(cargo, os.X_OK):
        log(f"cannot build {binary}: no cargo (install Rust, e.g. with rustup)")
        return False
    crate, version = CARGO_PEERS[binary]
    log(f"building {crate} {version} with cargo install --locked (takes minutes on 2 CPUs)")
    r = subprocess.run([cargo, "install", "--quiet", "--locked", "--root", CARGO_ROOT, "--version", version, crate])
    return r.returncode == 0 and cargo_peer_ok(binary)


def install_deps() -> int:
    """--deps: everything any tool, condition or report needs; what could not be had is listed."""
    missing = [b for b in APT_DEPS if not ensure_apt(b)]
    missing += [b for b in CARGO_PEERS if not ensure_cargo_peer(b)]
    if missing:
        log(f"not available: {', '.join(missing)}")
        return 1
    log(f"ready: {', '.join(APT_DEPS)}; {', '.join(f'{b} {v}' for b, (_, v) in CARGO_PEERS.items())} in {CARGO_ROOT}")
    return 0


# --------------------------------------------------------------------------------------------
# Conditions: where the source lives and what the destination is.
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Condition:
    name: str
    description: str
    cold: bool          # drop caches before each run
    source: str         # "tmpfs", "ext4-image" or "disk"
    dest: str           # "tmpfs" or "ext4-shm"


CONDITIONS: dict[str, Condition] = {c.name: c for c in [
    Condition("warm", "source on tmpfs, fresh tmpfs destination", False, "tmpfs", "tmpfs"),
    Condition("cold", "source on a loop-mounted ext4 image on disk, caches dropped; fresh tmpfs destination",
              True, "ext4-image", "tmpfs"),
    Condition("cold-disk", "source in a directory on the disk's own filesystem (no loop device), caches dropped; "
              "fresh tmpfs destination", True, "disk", "tmpfs"),
    Condition("ext4-dst", "source on tmpfs, fresh ext4 (mkfs on /dev/shm) destination", False, "tmpfs", "ext4-shm"),
    Condition("pagecache", "source in a directory on the disk's own filesystem, read into the page cache before "
              "each run; fresh ext4 (mkfs on /dev/shm) destination", False, "disk", "ext4-shm"),
]}


class Sources:
    """Where each condition's source tree lives; the tree itself is always `<root>/data`.

    tmpfs: generated once per dataset into a tmpfs that the conditions reading from tmpfs share.
    ext4-image: an ext4 image in the cache directory, built once per dataset version, loop-mounted
    read-only for each condition. disk: a directory in the cache directory itself, on whatever
    filesystem holds it (the machine's disk), generated once per dataset version.
    """

    def __init__(self, mounts: Mounts, work: str, cache: str):
        self.mounts, self.work, self.cache = mounts, work, cache
        self.tmpfs_ds: Dataset | None = None
        self.image_mnt: str | None = None

    def get(self, ds: Dataset, cond: Condition) -> str:
        size, inodes = fs_size(ds)
        if cond.source == "tmpfs":
            mnt = os.path.join(self.work, "src-tmpfs")
            if self.tmpfs_ds != ds:
                self.drop_tmpfs()
                self.mounts.tmpfs(mnt, size)
                generate(ds, os.path.join(mnt, "data"))
                self.tmpfs_ds = ds
            return os.path.join(mnt, "data")
        os.makedirs(self.cache, exist_ok=True)
        if cond.source == "disk":
            tree = os.path.join(self.cache, f"{ds.name}-{ds.key()}.tree")
            fstype = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", self.cache], capture_output=True,
                                    text=True).stdout.strip()
            if fstype in ("tmpfs", "ramfs", "overlay", ""):
                log(f"warning: {self.cache} is on {fstype or 'an unknown filesystem'}, not a disk: "
                    f"{cond.name} is not cold there (--cache)")
            if not os.path.exists(os.path.join(tree, ".complete")):
                log(f"building cold-source tree {tree}")
                shutil.rmtree(tree, ignore_errors=True)
                generate(ds, os.path.join(tree, "data"))
                open(os.path.join(tree, ".complete"), "w").close()
            return os.path.join(tree, "data")
        # ext4-image (the tree sits in data/ below the mount point: ext4 has lost+found at its root)
        mnt = os.path.join(self.work, f"src-{ds.name}-{cond.name}")
        image = os.path.join(self.cache, f"{ds.name}-{ds.key()}.img")
        if not os.path.exists(image):
            log(f"building cold-source image {image}")
            mkfs_ext4(image + ".tmp", size, inodes)
            self.mounts.ext4_image(image + ".tmp", mnt, readonly=False)
            generate(ds, os.path.join(mnt, "data"))
            self.mounts.umount(mnt)
            os.rename(image + ".tmp", image)
        self.mounts.ext4_image(image, mnt, readonly=True)
        self.image_mnt = mnt
        return os.path.join(mnt, "data")

    def release(self) -> None:
        """After a condition: unmounts its image (a tmpfs source stays for the next condition)."""
        if self.image_mnt:
            self.mounts.umount(self.image_mnt)
            self.image_mnt = None

    def drop_tmpfs(self) -> None:
        if self.tmpfs_ds is not None:
            self.mounts.umount(os.path.join(self.work, "src-tmpfs"))
            self.tmpfs_ds = None


def device_limits(path: str, runtime: int, log_path: str) -> dict | None:
    """fio's limits of the device under `path`: random 4 KiB reads at depth 64 and sequential
    1 MiB reads at depth 16, both O_DIRECT (no page cache). Reads the block device itself,
    read-only, when `path` is on one that may be opened (containers often forbid it); otherwise a
    1 GiB file that fio lays out in `path` and that is deleted afterwards."""
    source = subprocess.run(["findmnt", "-n", "-o", "SOURCE", "-T", path], capture_output=True,
                            text=True).stdout.strip().split("[")[0]  # btrfs: /dev/sda1[/subvol]
    try:
        is_block = stat.S_ISBLK(os.stat(source).st_mode)
        os.close(os.open(source, os.O_RDONLY | os.O_DIRECT))
    except OSError:
        is_block = False
    target = source if is_block else os.path.join(path, "fio-probe.dat")
    common = ["fio", f"--filename={target}", "--direct=1", "--ioengine=libaio", f"--runtime={runtime}",
              "--time_based", "--output-format=json"] + (["--readonly"] if is_block else ["--size=1G"])
    out = {"device": target, "runtime_s": runtime}
    try:
        for key, job in [("randread_iops", ["--name=randread", "--rw=randread", "--bs=4k", "--iodepth=64"]),
                         ("seqread_bytes_per_s", ["--name=seqread", "--rw=read", "--bs=1M", "--iodepth=16"])]:
            argv = common + job
            log(f"fio on {target}: {job[0][7:]} for {runtime} s")
            r = subprocess.run(argv, capture_output=True, text=True)
            with open(log_path, "a") as f:
                f.write("$ " + " ".join(argv) + "\n" + r.stderr)
            if r.returncode != 0:
                log(f"fio failed ({r.stderr.strip()[:200]}): no physical-limit rows")
                return None
            job0 = json.loads(r.stdout[r.stdout.index("{"):])["jobs"][0]
            read = job0["read"]
            out[key] = read["iops"] if key == "randread_iops" else read["bw_bytes"]
            if key == "randread_iops" and read.get("total_ios"):
                # fio's own CPU per 4 KiB read (O_DIRECT, libaio): what one read costs the
                # machine at the least, for the limit row's user/sys columns.
                cpu_s = job0.get("job_runtime", 0) / 1000.0
                out["randread_user_s_per_io"] = job0.get("usr_cpu", 0) / 100.0 * cpu_s / read["total_ios"]
                out["randread_sys_s_per_io"] = job0.get("sys_cpu", 0) / 100.0 * cpu_s / read["total_ios"]
    finally:
        if not is_block:
            with contextlib.suppress(OSError):
                os.unlink(target)
    log(f"device {target}: {out['randread_iops']:,.0f} random 4 KiB reads/s, "
        f"{out['seqread_bytes_per_s'] / MIB:,.0f} MiB/s sequential")
    return out


# --------------------------------------------------------------------------------------------
# Running and measuring.
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Sample:
    wall: float
    user: float
    sys: float
    maxrss_kib: int
    rc: int
    verified: str  # "ok", "skipped" or the failure


CURRENT_CHILD: list[int] = []


GNU_TIME = "/usr/bin/time"


def have_gnu_time() -> bool:
    try:
        r = subprocess.run([GNU_TIME, "--version"], capture_output=True, text=True)
        return "GNU" in (r.stdout + r.stderr)
    except OSError:
        return False


def timed(argv: list[str], env: dict[str, str], log_path: str, rss_file: str | None, timeout: float) -> tuple:
    """Runs argv; returns (wall seconds, exit code, rusage of it and its descendants, peak RSS KiB).

    ru_maxrss of a direct child of this (large) Python process includes Python's own RSS: exec
    records the old address space's high-water mark. So when GNU time is there the tool runs
    under it (a small process) and the peak RSS is the one GNU time reports for the tool alone;
    wall and user+sys CPU still come from wait4.
    """
    if rss_file:
        argv = [GNU_TIME, "-f", "%M", "-o", rss_file, *argv]
    with open(log_path, "ab") as out:
        out.write(("$ " + " ".join(argv) + "\n").encode())
        out.flush()
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=out, stderr=out, env=dict(os.environ, **env), start_new_session=True)
        CURRENT_CHILD.append(p.pid)
        killer = threading.Timer(timeout, lambda: os.killpg(p.pid, signal.SIGKILL))
        killer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        except BaseException:  # Ctrl-C: the child is in its own session and is off CURRENT_CHILD below
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            os.waitpid(p.pid, 0)
            raise
        finally:
            killer.cancel()
            CURRENT_CHILD.remove(p.pid)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if wall >= timeout:
            out.write(f"timed out after {timeout:.0f} s\n".encode())
    rss = ru.ru_maxrss
    if rss_file:
        try:
            with open(rss_file) as f:
                rss = int(f.read().split()[-1])
        except (OSError, ValueError, IndexError):
            pass
    return wall, p.returncode, ru, rss


def kill_children() -> None:
    for pid in list(CURRENT_CHILD):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def verify_copy(ds: Dataset, src: str, dst: str, sample: int) -> str:
    files_want, dirs_want, bytes_want = dataset_totals(ds)
    files = dirs = total = 0
    stack = [dst]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    dirs += 1
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    files += 1
                    total += e.stat(follow_symlinks=False).st_size
    if (files, dirs, total) != (files_want, dirs_want, bytes_want):
        return f"copy has {files} files/{dirs} dirs/{total} bytes, want {files_want}/{dirs_want}/{bytes_want}"
    listing = ds.listing()
    content = Content(ds.seed)
    rng = random.Random()
    for i in sorted(rng.sample(range(len(listing)), min(sample, len(listing)))):
        rel, size = listing[i]
        with open(os.path.join(dst, rel), "rb") as f:
            got = f.read()
        if got != content.expected(i, size):
            return f"content of {rel} differs"
    return "ok"


def fresh_destination(mounts: Mounts, cond: "Condition", mnt: str, size: int, inodes: int) -> None:
    """Mounts a new, empty filesystem of the condition's kind on mnt (unmount with mounts.umount)."""
    if cond.dest == "tmpfs":
        mounts.tmpfs(mnt, size)
    else:
        img = os.path.join("/dev/shm", f"uring-sync-bench-{os.getpid()}.img")
        mkfs_ext4(img, size, inodes)
        mounts.ext4_image(img, mnt, readonly=False)
        os.unlink(img)  # freed once unmounted


# Free page reporting (virtio-balloon): a guest page freed is handed back to the host, and the
# next write to it waits for the host to fault memory in again.  Measured on this project's
# VMs: 24-44 us per 4 KiB page when the page had been reported, ~2 us when it had not; a copy
# of 100K x 4 KiB into a fresh tmpfs then costs the floor 1.5 s of system time instead of
# 0.6 s, and how much of it a run pays depends on what the previous run freed and when.  That
# is the host's cost, not the copier's, so during a bench freed pages are kept (not reported)
# and each cell first touches as much memory as its destination will use.
PAGE_REPORTING = "/sys/module/page_reporting/parameters"
PAGE_REPORTING_HOLD = {"min_free_ms": "300000", "max_waiting_mib": "65536"}


@contextlib.contextmanager
def page_reporting_held(params: str = PAGE_REPORTING) -> Iterator[dict[str, str]]:
    """Holds back free page reporting while the block runs, and puts the old values back after
    it (exceptions and Ctrl-C included).  Yields what was changed ({} when this kernel has no
    such parameters, or they cannot be written)."""
    saved: dict[str, str] = {}
    try:
        for name, value in PAGE_REPORTING_HOLD.items():
            path = os.path.join(params, name)
            try:
                with open(path) as f:
                    old = f.read().strip()
                with open(path, "w") as f:
                    f.write(value)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    log(f"page reporting: cannot set {path} ({e.strerror}): host page faults may be timed")
                continue
            saved[path] = old
        if saved:
            log("page reporting held for the run (" +
                ", ".join(f"{os.path.basename(k)} {v} -> {PAGE_REPORTING_HOLD[os.path.basename(k)]}"
                          for k, v in saved.items()) + "); restored at exit")
        yield {os.path.basename(k): PAGE_REPORTING_HOLD[os.path.basename(k)] for k in saved}
    finally:
        for path, old in saved.items():
            try:
                with open(path, "w") as f:
                    f.write(old)
            except OSError as e:
                log(f"page reporting: could not restore {path} to {old} ({e.strerror})")


def touch_memory(nbytes: int) -> None:
    """Writes nbytes of anonymous memory and frees it: the pages a destination is about to take
    are then backed by the host (see page_reporting_held)."""
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) * KIB for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        avail = nbytes
    nbytes = max(0, min(nbytes, avail - 2 * GIB))
    chunk = b"\1" * MIB
    with mmap.mmap(-1, max(nbytes, MIB)) as m:
        for _ in range(nbytes // MIB):
            m.write(chunk)


def warm_up(src: str) -> None:
    """Reads every file under src, so that its data and metadata are in the page cache."""
    for root, _, files in os.walk(src):
        for name in files:
            with contextlib.suppress(OSError), open(os.path.join(root, name), "rb") as f:
                while f.read(1 << 20):
                    pass


def settle(cond: "Condition", src: str | None = None) -> None:
    """Right before a timed run: caches dropped (cold), or a disk source read into the cache
    (pagecache), and nothing dirty left to write back."""
    if cond.cold:
        drop_caches()
    else:
        if cond.source == "disk" and src:
            warm_up(src)
        os.sync()


# --------------------------------------------------------------------------------------------
# Scenarios: re-runs and options, each as a ratio to a full copy measured in the same rep.
# --------------------------------------------------------------------------------------------

SCENARIOS = ["noop", "resume", "verify", "fsync", "archive"]
SCENARIO_LABELS = {
    "noop": "no-op re-run into a complete copy",
    "resume": "resume: re-run after SIGKILL at ~50%",
    "verify": "full copy with --verify",
    "fsync": "full copy with --fsync",
    "archive": "full copy with -a (-p -o -g -X -A -H -S)",
}
NOOP_TOOLS = ["uring-sync", "rsync", "rclone"]  # tools whose no-op re-run is timed


def help_lists(binary: str, flag: str) -> bool:
    """Whether `binary --help` documents flag (an option another branch may not have landed yet)."""
    try:
        r = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    text = r.stdout + r.stderr
    return any(tok.rstrip(",=") == flag or tok.startswith(flag + "=") for tok in text.replace(",", " ").split())


def count_files(root: str) -> int:
    """Regular files below root, temporaries of a killed run not included. A killed uring-sync
    leaves new directories (a new root too: beside it) under their temporary names
    .usync-dir-<name>.tmp, which the next run takes over: the files in them count."""
    n = 0
    if not os.path.lexists(root):
        head, tail = os.path.split(root.rstrip("/"))
        root = os.path.join(head, f".usync-dir-{tail}.tmp")
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except FileNotFoundError:
            continue
        with it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False) and not (e.name.startswith(".usync-") and e.name.endswith(".tmp")):
                    n += 1
    return n


def used_bytes(mnt: str) -> int:
    """Bytes in use on the filesystem mounted at mnt: one statfs, cheap enough to poll."""
    st = os.statvfs(mnt)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def kill_when(argv: list[str], env: dict[str, str], log_path: str, ready: Callable[[], bool],
              timeout: float, poll: float = 0.002) -> bool:
    """Starts argv and SIGKILLs its process group as soon as ready() holds (polled every `poll`
    seconds); False when it exited before that (or timed out and was killed)."""
    with open(log_path, "ab") as out:
        out.write(("$ " + " ".join(argv) + "   # SIGKILL half-way\n").encode())
        out.flush()
        p = subprocess.Popen(argv, stdout=out, stderr=out, env=dict(os.environ, **env), start_new_session=True)
        CURRENT_CHILD.append(p.pid)
        deadline = time.monotonic() + timeout
        try:
            while p.poll() is None:
                if ready() or time.monotonic() > deadline:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
                    return time.monotonic() <= deadline
                time.sleep(poll)
            return False
        except BaseException:  # Ctrl-C while polling: the child must not outlive the harness
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise
        finally:
            CURRENT_CHILD.remove(p.pid)


@dataclasses.dataclass
class ScenarioRun:
    """One rep of a scenario: its timed run, the full copy it is compared with, and notes."""
    sample: Sample
    full: Sample
    killed_at: float | None = None  # resume: fraction of the files in DST when the copy was killed


def scenario_plan(scenarios: list[str], tools: dict[str, Tool], bin_path: str) -> list[tuple[str, str, str | None]]:
    """[(scenario, tool, reason it cannot run or None)] in the order each rep runs them."""
    plan: list[tuple[str, str, str | None]] = []
    for sc in scenarios:
        if sc == "noop":
            for t in NOOP_TOOLS:
                reason = None
                if t not in tools:
                    reason = "no rclone binary (build/bin/rclone, --rclone)" if t == "rclone" else f"no {t}"
                elif t == "rsync" and shutil.which("rsync") is None:
                    reason = "rsync not installed"
                plan.append((sc, t, reason))
        elif sc == "resume":
            plan.append((sc, "uring-sync", None))
        else:  # an option of uring-sync
            flag = f"--{sc}"
            plan.append((sc, "uring-sync", None if help_lists(bin_path, flag) else
                         f"not available: `uring-sync --help` does not list {flag}"))
    return plan


def run_scenarios(a: argparse.Namespace, ds: Dataset, cond: "Condition", src: str, tools: dict[str, Tool],
                  scenarios: list[str], mounts: Mounts, work: str, log_path: str, rss_file: str | None,
                  size: int, inodes: int) -> tuple[list[dict], int]:
    """Times each scenario a.scenario_reps times, interleaved, each next to a full copy by the same tool
    (uring-sync's for resume, --verify and --fsync) in the same rep, every timed run on a fresh
    destination filesystem. Returns (result rows, failures)."""
    plan = scenario_plan(scenarios, tools, a.bin)
    runnable = [(sc, t) for sc, t, why in plan if why is None]
    runs: dict[tuple[str, str], list[ScenarioRun]] = {(sc, t): [] for sc, t in runnable}
    files = dataset_totals(ds)[0]
    data_bytes = sum(-(-sz // 4096) * 4096 for _, sz in ds.listing())  # in 4 KiB blocks, as filesystems count
    failures = 0

    def timed_run(argv: list[str], env: dict[str, str], dst: str, sample: int) -> Sample:
        nonlocal failures
        settle(cond, src)
        wall, rc, ru, rss = timed(argv, env, log_path, rss_file, a.timeout)
        verified = f"exit {rc}" if rc != 0 else verify_copy(ds, src, dst, sample)
        if verified != "ok":
            failures += 1
            log(f"FAILED {' '.join(argv)}: {verified}")
        return Sample(wall, ru.ru_utime, ru.ru_stime, rss, rc, verified)

    def log_run(sc: str, t: str, r: ScenarioRun, rep: int) -> None:
        extra = f"  killed at {r.killed_at:.0%}" if r.killed_at is not None else ""
        log(f"{ds.name}/{cond.name} rep {rep + 1}/{a.scenario_reps} {sc}/{t:12} {r.sample.wall:8.3f} s "
            f"(full copy {r.full.wall:.3f} s) {r.sample.verified}{extra}")

    # The tools that need a full copy of their own in each rep: the no-op ones, and uring-sync
    # as the yardstick of the others.
    full_tools = [t for sc, t in runnable if sc == "noop"]
    if "uring-sync" not in full_tools and runnable:
        full_tools.insert(0, "uring-sync")
    for rep in range(a.scenario_reps):
        full: dict[str, Sample] = {}
        for t in full_tools:  # full copy, then (for noop) the no-op re-run on the same filesystem
            tool = tools[t]
            mnt = os.path.join(work, f"scn-{rep}-full-{t}")
            fresh_destination(mounts, cond, mnt, size, inodes)
            dst = os.path.join(mnt, "copy")
            full[t] = timed_run(tool.argv(src, dst), tool.env, dst, a.sample)
            if ("noop", t) in runs and full[t].rc == 0:
                r = ScenarioRun(timed_run(tool.argv(src, dst), tool.env, dst, a.sample), full[t])
                runs[("noop", t)].append(r)
                log_run("noop", t, r, rep)
            mounts.umount(mnt)
            shutil.rmtree(mnt, ignore_errors=True)
        base = full.get("uring-sync")
        for sc, t in runnable:
            if sc == "noop" or base is None or base.rc != 0:
                continue
            tool = tools[t]
            mnt = os.path.join(work, f"scn-{rep}-{sc}")
            fresh_destination(mounts, cond, mnt, size, inodes)
            dst = os.path.join(mnt, "copy")
            killed_at = None
            if sc == "resume":
                # Killed once half the dataset's blocks are in use on the fresh destination
                # filesystem (statfs, polled): about half the files, whatever the copy's speed.
                settle(cond, src)
                before, half = used_bytes(mnt), data_bytes // 2
                if kill_when(tool.argv(src, dst), tool.env, log_path, lambda: used_bytes(mnt) - before >= half,
                             a.timeout):
                    killed_at = count_files(dst) / files if files else 0.0
                else:
                    killed_at = 1.0
                    log("resume: the copy ended (or timed out) before half of it was in place: "
                        "this rep's re-run starts from a complete copy")
                argv = tool.argv(src, dst)
                sample = files  # the tree must be complete and identical: every file's bytes
            else:
                argv = tool.argv(src, dst)
                argv = argv[:1] + [f"--{sc}"] + argv[1:]
                sample = a.sample
            r = ScenarioRun(timed_run(argv, tool.env, dst, sample), base, killed_at)
            runs[(sc, t)].append(r)
            log_run(sc, t, r, rep)
            mounts.umount(mnt)
            shutil.rmtree(mnt, ignore_errors=True)

    files_, dirs, total = dataset_totals(ds)
    rows = []
    for sc, t, why in plan:
        label = tools[t].label if t in tools else t
        row = {"dataset": ds.name, "condition": cond.name, "cold": cond.cold, "scenario": sc,
               "scenario_label": SCENARIO_LABELS[sc], "tool": t, "label": label,
               "dataset_description": ds.description, "condition_description": cond.description,
               "files": files_, "dirs": dirs, "bytes": total, "available": why is None}
        if why is not None:
            row["reason"] = why
            rows.append(row)
            continue
        rs = runs[(sc, t)]
        ratios = [r.sample.wall / r.full.wall for r in rs if r.sample.rc == 0 and r.full.wall > 0]
        row.update({
            "summary": summarize([r.sample for r in rs]),
            "full_summary": summarize([r.full for r in rs]),
            "ratio": statistics.median(ratios) if ratios else float("nan"),
            "ratios": ratios,
            "samples": [dataclasses.asdict(r.sample) for r in rs],
            "full_samples": [dataclasses.asdict(r.full) for r in rs],
        })
        if sc == "resume":
            row["killed_at"] = [r.killed_at for r in rs]
        rows.append(row)
    return rows, failures


# --------------------------------------------------------------------------------------------
# Reporting.
# --------------------------------------------------------------------------------------------

def summarize(samples: list[Sample]) -> dict:
    good = [s for s in samples if s.rc == 0]
    walls = [s.wall for s in good] or [float("nan")]
    return {
        "runs": len(samples), "ok_runs": len(good),
        "median_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls),
        "user_s": statistics.median([s.user for s in good]) if good else float("nan"),
        "sys_s": statistics.median([s.sys for s in good]) if good else float("nan"),
        "peak_rss_mib": max((s.maxrss_kib for s in samples), default=0) / 1024,
        "verified": sorted({s.verified for s in samples}),
    }


def machine_info() -> dict:
    info = {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version()}
    try:
        with open("/proc/meminfo") as f:
            info["mem_total"] = f.readline().split(":")[1].strip()
    except OSError:
        pass
    try:
        info["git"] = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip() or "none"
    except OSError:
        pass
    return info


# --------------------------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="small4k", help=f"comma list of {', '.join(DATASETS)} (default small4k)")
    ap.add_argument("--conditions", default="warm,cold", help=f"comma list of {', '.join(CONDITIONS)} (default warm,cold)")
    ap.add_argument("--plan", default="",
                    help="'full' (what make bench runs: every dataset under the conditions that matter for it, "
                         "each with its own tools, scenarios on small4k warm) or DATASET:CONDITION,... "
                         "instead of the cross product of --datasets and --conditions")
    ap.add_argument("--tools", default=",".join(DEFAULT_TOOLS),
                    help="comma list of tools (default: %(default)s; rclone ones only if an rclone binary exists)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help="comma list of re-run and option scenarios timed after the tools, each as a ratio to a "
                         "full copy in the same rep: noop (re-run into a complete copy: uring-sync, rsync -a, "
                         "rclone copy), resume (re-run after SIGKILL at ~50%%), verify, fsync (uring-sync --verify/"
                         "--fsync, when its --help lists them); '' for none (default: %(default)s)")
    ap.add_argument("--scenario-reps", type=int, default=None,
                    help="reps of each scenario (default: --reps; 1 with --quick, a smoke run of each)")
    ap.add_argument("--reps", type=int, default=None, help="timed runs per tool (default 5; 3 with --quick)")
    ap.add_argument("--quick", action="store_true", help="smoke run: dataset quick, warm only, 3 reps")
    ap.add_argument("--bin", default=os.environ.get("URING_SYNC_BIN", os.path.join(REPO, "build", "bin", "uring-sync")))
    ap.add_argument("--base-bin", default=None,
                    help="another uring-sync binary (an older build) offered as the tool uring-sync-base, "
                         "to time against this one in the same run")
    ap.add_argument("--rclone", default=None, help="rclone binary with the uring backend (default build/bin/rclone)")
    ap.add_argument("--out", default=os.path.join(REPO, "build", "bench"), help="results directory")
    ap.add_argument("--cache", default=None, help="where cold-source ext4 images are kept (default OUT/cache)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds before one run is killed and marked failed (default 300)")
    ap.add_argument("--sample", type=int, default=100, help="files whose bytes are checked after each verified run")
    ap.add_argument("--no-mount", action="store_true",
                    help="no root: plain directories instead of fresh filesystems (warm only; less trustworthy)")
    ap.add_argument("--fio-runtime", type=int, default=10,
                    help="seconds per fio job measuring the cold sources' device (default 10)")
    ap.add_argument("--no-fio", action="store_true", help="no physical-limit rows for the cold conditions")
    ap.add_argument("--list", action="store_true", help="list datasets, conditions and tools, then exit")
    ap.add_argument("--deps", action="store_true",
                    help="install what the harness uses (Debian: rsync fio gnuplot-nox time; cargo: cpz fcp xcp at "
                         "pinned versions into build/bench/cargo) when missing, then exit")
    ap.add_argument("--no-install", action="store_true",
                    help="never install: skip tools that are missing (--quick builds no cargo peers either)")
    a = ap.parse_args()
    if a.quick:
        a.datasets, a.conditions = "quick", "warm"
    if a.reps is None:
        a.reps = 3 if a.quick else 5
    if a.scenario_reps is None:
        a.scenario_reps = 1 if a.quick else a.reps
    return a


def main() -> int:
    a = parse_args()
    if a.deps:
        return install_deps()
    rclone = a.rclone or os.path.join(REPO, "build", "bin", "rclone")
    rclone = rclone if os.access(rclone, os.X_OK) else None
    tools = make_tools(a.bin, rclone, a.base_bin)
    if a.list:
        for d in DATASETS.values():
            print(f"dataset   {d.name:14} {d.description}")
        for c in CONDITIONS.values():
            print(f"condition {c.name:14} {c.description}")
        for t in tools.values():
            print(f"tool      {t.name:14} {t.label}")
        for sc in SCENARIOS:
            print(f"scenario  {sc:14} {SCENARIO_LABELS[sc]}")
        return 0

    wanted = [n for n in a.tools.split(",") if n]
    if a.plan == "full" and a.tools == ",".join(DEFAULT_TOOLS):
        wanted = list(dict.fromkeys(t for _, _, ts, _ in FULL_PLAN for t in ts))  # every tool the plan names
    try:
        plan = parse_plan(a.plan, a.datasets, a.conditions, wanted)
    except (ValueError, KeyError) as e:
        sys.exit(f"bench: {e}")
    conditions = [CONDITIONS[c] for c in dict.fromkeys(c for _, c, _, _ in plan)]
    for n in wanted:
        if n not in tools and not n.startswith("rclone"):
            sys.exit(f"bench: unknown tool {n!r}; --list shows them")
    picked: list[str] = []
    for n in wanted:
        if n not in tools:
            log(f"skipping {n}: no rclone binary at build/bin/rclone (--rclone)")
        elif n.startswith("uring-sync") and not os.access(a.bin, os.X_OK):
            sys.exit(f"bench: {a.bin} not found: run 'make' first (or --bin / URING_SYNC_BIN)")
        elif n == "rsync" and not ensure_apt("rsync", install=not a.no_install):
            log("skipping rsync: not installed and apt-get install failed")
        elif n in CARGO_PEERS and not ensure_cargo_peer(n, install=not (a.quick or a.no_install)):
            log(f"skipping {n}: {CARGO_PEERS[n][0]} {CARGO_PEERS[n][1]} is not in {CARGO_ROOT} (make bench-deps)")
        else:
            picked.append(n)
    scenarios = [n for n in a.scenarios.split(",") if n]
    for n in scenarios:
        if n not in SCENARIOS:
            sys.exit(f"bench: unknown scenario {n!r}; --list shows them")
    if scenarios and not os.access(a.bin, os.X_OK):
        sys.exit(f"bench: {a.bin} not found: run 'make' first (or --bin / URING_SYNC_BIN)")
    if "noop" in scenarios and not ensure_apt("rsync", install=not a.no_install):
        log("no rsync: its no-op re-run row is reported as not available")
    if not a.no_mount and os.geteuid() != 0:
        sys.exit("bench: needs root for fresh filesystems and drop_caches (or --no-mount for a rough warm run)")
    plan = [(d, c, [t for t in ts if t in picked], sc) for d, c, ts, sc in plan]
    if a.no_mount and any(c.name != "warm" for c in conditions):
        sys.exit("bench: --no-mount supports the warm condition only")

    os.makedirs(a.out, exist_ok=True)
    cache = a.cache or os.path.join(a.out, "cache")
    work = tempfile.mkdtemp(prefix="uring-sync-bench.", dir="/tmp")
    mounts = Mounts(enabled=not a.no_mount)
    sources = Sources(mounts, work, cache)
    log_path = os.path.join(a.out, "runs.log")
    rss_file = os.path.join(work, "rss") if have_gnu_time() else None
    if not rss_file:
        log("GNU time (/usr/bin/time) not found: peak RSS is wait4's, an upper bound that includes this harness's RSS")
    open(log_path, "w").close()

    def on_term(signum, frame):  # SIGTERM/SIGHUP behave like Ctrl-C: unwind and clean up
        raise KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    report = {"meta": {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       "machine": machine_info(), "args": vars(a), "tools": {n: tools[n].label for n in picked}},
              "results": [], "scenarios": []}
    failures = 0
    interrupted = False
    held = contextlib.ExitStack()
    try:
        report["meta"]["page_reporting_held"] = held.enter_context(page_reporting_held())
        if any(c.cold for c in conditions) and not a.no_fio:
            os.makedirs(cache, exist_ok=True)  # the cold sources live here (images or trees)
            if ensure_apt("fio", install=not a.no_install):
                report["meta"]["physical"] = device_limits(cache, a.fio_runtime, log_path)
            else:
                log("no fio (apt-get install fio failed): no physical-limit rows")
        for ds_name, cond_name, cell_tools, cell_scenarios in plan:
            ds, cond = DATASETS[ds_name], CONDITIONS[cond_name]
            size, inodes = fs_size(ds)
            files, dirs, total = dataset_totals(ds)
            log(f"dataset {ds.name}, {cond.name}: {files} files, {dirs} dirs, {total / MIB:.0f} MiB")
            src = sources.get(ds, cond)
            touch_memory(size)
            results: dict[str, list[Sample]] = {n: [] for n in cell_tools}
            timed_out: set[str] = set()
            for rep in range(a.reps):
                for name in cell_tools:  # interleaved: A B C A B C ...
                    if name in timed_out:
                        continue  # one timeout per dataset and condition is enough
                    tool = tools[name]
                    mnt = os.path.join(work, f"dst-{rep}-{name}")
                    fresh_destination(mounts, cond, mnt, size, inodes)
                    dst = os.path.join(mnt, "copy")
                    if tool.dst_must_exist:
                        os.mkdir(dst)
                    settle(cond, src)
                    wall, rc, ru, rss = timed(tool.argv(src, dst), tool.env, log_path, rss_file, a.timeout)
                    verified = "skipped"
                    if rc != 0:
                        verified = f"exit {rc}"
                        if wall >= a.timeout:
                            verified = f"timeout {a.timeout:.0f} s"
                            timed_out.add(name)
                        failures += 1
                    elif tool.verify:
                        verified = verify_copy(ds, src, dst, a.sample)
                        if verified != "ok":
                            failures += 1
                            log(f"VERIFY FAILED {name} rep {rep}: {verified}")
                    s = Sample(wall, ru.ru_utime, ru.ru_stime, rss, rc, verified)
                    results[name].append(s)
                    log(f"{ds.name}/{cond.name} rep {rep + 1}/{a.reps} {name:16} {wall:8.3f} s "
                        f"user {s.user:6.2f} sys {s.sys:6.2f} rss {s.maxrss_kib / 1024:7.1f} MiB  {verified}")
                    mounts.umount(mnt)
                    shutil.rmtree(mnt, ignore_errors=True)
            if scenarios and cell_scenarios:
                rows, failed = run_scenarios(a, ds, cond, src, tools, scenarios, mounts, work, log_path,
                                             rss_file, size, inodes)
                report["scenarios"] += rows
                failures += failed
            sources.release()
            for name, samples in results.items():
                report["results"].append({"dataset": ds.name, "condition": cond.name, "tool": name,
                                          "label": tools[name].label, "summary": summarize(samples),
                                          "dataset_description": ds.description, "files": files, "dirs": dirs,
                                          "bytes": total, "condition_description": cond.description,
                                          "cold": cond.cold,
                                          "samples": [dataclasses.asdict(s) for s in samples]})
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: cleaning up")
        kill_children()
    finally:
        mounts.cleanup()
        shutil.rmtree(work, ignore_errors=True)
        held.close()

    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    print(report_md.write_all(report, a.out))
    log(f"wrote results.json, results.md and results.png in {a.out} (raw command output: {log_path}); "
        "test/bench/report.py --readme README.md puts this run's table in the README")
    if interrupted:
        return 130
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
