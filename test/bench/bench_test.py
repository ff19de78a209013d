"""bench.py's scenario plumbing without timing and without root: which scenarios can run, how a
copy is killed half-way, how the files it left are counted.

`python3 -m unittest discover -s test/bench -p '*_test.py'` (make test-bench).
"""

import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def fake_binary(dir_: str, help_text: str) -> str:
    path = os.path.join(dir_, "uring-sync")
    with open(path, "w") as f:
        f.write("#!/bin/sh\ncat <<'EOF'\n" + help_text + "\nEOF\n")
    os.chmod(path, 0o755)
    return path


HELP_WITHOUT = """Usage: uring-sync [OPTIONS] SRC DST
  -n,--dry-run                list what would be copied
  --checksum                  decide by content"""
HELP_WITH = HELP_WITHOUT + """
  --verify                    re-read every written file and compare
  --fsync                     fsync files and directories"""


class ScenarioTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bench-test.")
        self.log = os.path.join(self.tmp, "runs.log")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def test_help_lists(self):
        without = fake_binary(os.path.join(self.tmp), HELP_WITHOUT)
        self.assertFalse(bench.help_lists(without, "--verify"))
        self.assertTrue(bench.help_lists(without, "--checksum"))
        self.assertFalse(bench.help_lists(without, "--check"))  # a prefix is not the flag
        self.assertFalse(bench.help_lists(os.path.join(self.tmp, "missing"), "--verify"))
        os.unlink(without)
        with_ = fake_binary(self.tmp, HELP_WITH)
        self.assertTrue(bench.help_lists(with_, "--verify"))
        self.assertTrue(bench.help_lists(with_, "--fsync"))

    def test_plan_marks_what_cannot_run(self):
        binary = fake_binary(self.tmp, HELP_WITHOUT)
        tools = bench.make_tools(binary, rclone=None)
        plan = bench.scenario_plan(bench.SCENARIOS, tools, binary)
        why = {(sc, t): reason for sc, t, reason in plan}
        self.assertEqual([(sc, t) for sc, t, _ in plan],
                         [("noop", "uring-sync"), ("noop", "rsync"), ("noop", "rclone"), ("resume", "uring-sync"),
                          ("verify", "uring-sync"), ("fsync", "uring-sync"), ("archive", "uring-sync")])
        self.assertIsNone(why[("noop", "uring-sync")])
        self.assertIsNone(why[("resume", "uring-sync")])
        self.assertIn("no rclone binary", why[("noop", "rclone")])
        self.assertIn("not available", why[("verify", "uring-sync")])
        self.assertIn("--fsync", why[("fsync", "uring-sync")])
        self.assertIn("--archive", why[("archive", "uring-sync")])
        # Once the flags land, the same plan runs them.
        binary = fake_binary(self.tmp, HELP_WITH)
        plan = bench.scenario_plan(["verify", "fsync"], bench.make_tools(binary, rclone="/bin/true"), binary)
        self.assertEqual(plan, [("verify", "uring-sync", None), ("fsync", "uring-sync", None)])

    def test_base_binary_is_a_tool_of_its_own(self):
        binary = fake_binary(self.tmp, HELP_WITHOUT)
        self.assertNotIn("uring-sync-base", bench.make_tools(binary, rclone=None))
        base = os.path.join(self.tmp, "uring-sync-7a6d72c")
        tools = bench.make_tools(binary, rclone=None, base_bin=base)
        self.assertEqual(tools["uring-sync-base"].argv("S", "D"), [base, "S", "D"])
        self.assertEqual(tools["uring-sync"].argv("S", "D"), [binary, "S", "D"])
        self.assertIn("uring-sync-7a6d72c", tools["uring-sync-base"].label)

    def test_kill_when(self):
        flag = os.path.join(self.tmp, "half")
        t0 = time.monotonic()
        killed = bench.kill_when(["sh", "-c", 'sleep 0.1; touch "$0"; sleep 30', flag], {}, self.log,
                                 lambda: os.path.exists(flag), timeout=20)
        self.assertTrue(killed)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertFalse(bench.kill_when(["true"], {}, self.log, lambda: False, timeout=20))  # done first
        self.assertEqual(bench.CURRENT_CHILD, [])
        with open(self.log) as f:
            self.assertIn("SIGKILL half-way", f.read())

    def test_count_files_skips_temporaries(self):
        os.makedirs(os.path.join(self.tmp, "t", "d"))
        for rel in ["t/a", "t/d/b", "t/d/.usync-0123456789abcdef-1.tmp"]:
            open(os.path.join(self.tmp, rel), "w").close()
        os.symlink("a", os.path.join(self.tmp, "t", "link"))
        self.assertEqual(bench.count_files(os.path.join(self.tmp, "t")), 2)
        self.assertEqual(bench.count_files(os.path.join(self.tmp, "missing")), 0)

    def test_count_files_counts_directories_being_built(self):
        # A killed run's new directories, and a new root beside it, under their temporary names.
        os.makedirs(os.path.join(self.tmp, ".usync-dir-new.tmp", ".usync-dir-sub.tmp"))
        for rel in [".usync-dir-new.tmp/a", ".usync-dir-new.tmp/.usync-dir-sub.tmp/b"]:
            open(os.path.join(self.tmp, rel), "w").close()
        self.assertEqual(bench.count_files(os.path.join(self.tmp, "new")), 2)



class PlanTest(unittest.TestCase):
    def test_default_is_the_cross_product(self):
        cells = bench.parse_plan("", "small4k,mixed", "warm,cold", ["cp-r", "uring-sync"])
        self.assertEqual([(d, c) for d, c, _, _ in cells],
                         [("small4k", "warm"), ("small4k", "cold"), ("mixed", "warm"), ("mixed", "cold")])
        self.assertTrue(all(ts == ["cp-r", "uring-sync"] and sc for _, _, ts, sc in cells))

    def test_full_plan_keeps_only_available_tools_and_scenarios_on_one_cell(self):
        cells = bench.parse_plan("full", "", "", ["cp-r", "uring-sync", "uring-sync-sync", "rclone"])
        self.assertEqual(len(cells), len(bench.FULL_PLAN))
        for d, c, ts, _ in cells:
            self.assertIn(d, bench.DATASETS)
            self.assertIn(c, bench.CONDITIONS)
            self.assertTrue(set(ts) <= {"cp-r", "uring-sync", "uring-sync-sync", "rclone"}, ts)
            self.assertIn("uring-sync", ts)
        self.assertEqual([(d, c) for d, c, _, sc in cells if sc], [("small4k", "warm")])
        tiny = next(ts for d, _, ts, _ in cells if d == "tiny1m")
        self.assertNotIn("rclone", tiny)

    def test_named_cells(self):
        cells = bench.parse_plan("flat:warm,deep-narrow:cold-disk", "small4k", "warm", ["floor"])
        self.assertEqual([(d, c, ts) for d, c, ts, _ in cells],
                         [("flat", "warm", ["floor"]), ("deep-narrow", "cold-disk", ["floor"])])
        for bad in ("flat", "nosuch:warm", "flat:nosuch"):
            with self.assertRaises(ValueError):
                bench.parse_plan(bad, "", "", ["floor"])


class PageReportingTest(unittest.TestCase):
    """The hold on free page reporting is set for the run and always undone."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bench-test.")
        for name, value in (("min_free_ms", "0"), ("max_waiting_mib", "1024"), ("page_reporting_order", "9")):
            with open(os.path.join(self.tmp, name), "w") as f:
                f.write(value + "\n")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def values(self):
        out = {}
        for name in sorted(os.listdir(self.tmp)):
            with open(os.path.join(self.tmp, name)) as f:
                out[name] = f.read().strip()
        return out

    def test_held_during_and_restored_after(self):
        with bench.page_reporting_held(self.tmp) as held:
            self.assertEqual(held, bench.PAGE_REPORTING_HOLD)
            self.assertEqual(self.values(), dict(bench.PAGE_REPORTING_HOLD, page_reporting_order="9"))
        self.assertEqual(self.values(), {"min_free_ms": "0", "max_waiting_mib": "1024", "page_reporting_order": "9"})

    def test_restored_after_an_interrupt(self):
        with self.assertRaises(KeyboardInterrupt):
            with bench.page_reporting_held(self.tmp):
                raise KeyboardInterrupt
        self.assertEqual(self.values()["min_free_ms"], "0")
        self.assertEqual(self.values()["max_waiting_mib"], "1024")

    def test_a_kernel_without_it_changes_nothing(self):
        with bench.page_reporting_held(os.path.join(self.tmp, "absent")) as held:
            self.assertEqual(held, {})
        os.unlink(os.path.join(self.tmp, "max_waiting_mib"))
        with bench.page_reporting_held(self.tmp) as held:
            self.assertEqual(held, {"min_free_ms": bench.PAGE_REPORTING_HOLD["min_free_ms"]})
        self.assertEqual(self.values(), {"min_free_ms": "0", "page_reporting_order": "9"})


if __name__ == "__main__":
    unittest.main()
