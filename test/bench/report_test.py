"""report.py on a canned results.json (testdata/): tables, limit rows, README rewrite, chart.

No timing and no root: `python3 -m unittest discover -s test/bench -p '*_test.py'`.
"""

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

CANNED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata", "results.json")


class ReportTest(unittest.TestCase):
    def setUp(self):
        self.rep = report.load(CANNED)
        self.tmp = tempfile.mkdtemp(prefix="report-test.")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def test_section_rows_and_ratios(self):
        md = report.markdown(self.rep)
        self.assertIn("### small4k (100K x 4 KiB in 100 dirs), warm:", md)
        self.assertIn("| uring-sync | 0.500 | 0.450–0.550 | 4.00x | 200,000 | 781.2 |", md)
        self.assertIn("| tar cf - \\| tar xf - | nan |", md)  # a tool whose runs all failed
        self.assertIn("0/3 | exit 2 |", md)

    def test_limit_rows_only_for_cold_conditions(self):
        secs = {s["condition"]: s for s in report.sections(self.rep)}
        warm = [r["tool"] for r in secs["warm"]["rows"]]
        cold = {r["tool"]: r["median"] for r in secs["cold-disk"]["rows"]}
        self.assertNotIn(report.LIMIT_RANDOM, warm)
        self.assertAlmostEqual(cold[report.LIMIT_RANDOM], 100000 / 100000.0)  # files / IOPS
        self.assertAlmostEqual(cold[report.LIMIT_SEQ], 409600000 / 1048576000.0)  # bytes / bandwidth
        self.assertIn("physical limit: 1 random 4 KiB read per file at 100,000 IOPS", report.markdown(self.rep))

    def test_limit_row_shows_fios_cpu_when_recorded(self):
        import copy
        self.assertIn("| *physical limit: 1 random 4 KiB read per file at 100,000 IOPS* | 1.000 | – | ", report.markdown(self.rep))
        self.assertIn("| – | – | – | – | fio |", report.markdown(self.rep))  # not recorded: no CPU
        rep = copy.deepcopy(self.rep)
        rep["meta"]["physical"].update(randread_user_s_per_io=1e-6, randread_sys_s_per_io=5e-6)
        md = report.markdown(rep)
        self.assertIn("| 0.10 | 0.50 | – | – | fio |", md)  # 100K files x fio's CPU per read

    def test_merged_runs_keep_their_own_device_limits(self):
        import copy
        second = copy.deepcopy(self.rep)
        for r in second["results"] + second["scenarios"]:
            r["dataset"] = "deep-narrow"
        second["meta"]["physical"]["randread_iops"] = 50000.0
        second["meta"]["date"] = "2026-12-03T14:00:00+00:00"
        merged = report.merge([self.rep, second])
        secs = {(s["dataset"], s["condition"]): s for s in report.sections(merged)}
        self.assertEqual(len(secs), 4)
        limit = lambda key: next(r["median"] for r in secs[key]["rows"] if r["tool"] == report.LIMIT_RANDOM)
        self.assertAlmostEqual(limit(("small4k", "cold-disk")), 100000 / 100000.0)
        self.assertAlmostEqual(limit(("deep-narrow", "cold-disk")), 100000 / 50000.0)
        table = report.readme_table(merged)
        self.assertIn("2026-12-03 14:00 UTC", table)
        self.assertIn(" deep-narrow, warm |", table.splitlines()[2])  # a column of the header row
        self.assertEqual(len(merged["scenarios"]), 2 * len(self.rep["scenarios"]))
        self.assertIs(report.merge([self.rep]), self.rep)

    def test_a_re_run_cell_keeps_its_column(self):
        import copy
        later = copy.deepcopy(self.rep)
        later["results"] = [r for r in later["results"] if r["condition"] == "warm"]
        later["scenarios"] = []
        for r in later["results"]:
            r["summary"]["median_s"] = 9.0
        merged = report.merge([self.rep, later])
        before = [(s["dataset"], s["condition"]) for s in report.sections(self.rep)]
        self.assertEqual([(s["dataset"], s["condition"]) for s in report.sections(merged)], before)
        warm = next(s for s in report.sections(merged) if s["condition"] == "warm")
        self.assertTrue(all(r["median"] == 9.0 for r in warm["rows"]))  # the later run's, whole

    def test_held_page_reporting_is_stated(self):
        import copy
        self.assertNotIn("page reporting", report.header(self.rep) + report.readme_table(self.rep))
        held = copy.deepcopy(self.rep)
        held["meta"]["page_reporting_held"] = {"min_free_ms": "300000"}
        self.assertIn("Free page reporting held", report.header(held))
        self.assertIn("free page reporting held", report.readme_table(held))
        merged = report.merge([self.rep, held])
        runs = report.header(merged).split("; run 2")
        self.assertNotIn("page reporting", runs[0])
        self.assertIn("free page reporting held", runs[1])

    def test_a_later_run_replaces_a_cell_whole(self):
        import copy
        again = copy.deepcopy(self.rep)
        again["results"] = [r for r in again["results"] if r["condition"] == "warm"]
        for r in again["results"]:
            r["summary"]["median_s"] = 9.0
        merged = report.merge([self.rep, again])
        secs = {s["condition"]: s for s in report.sections(merged)}
        self.assertEqual(set(secs), {"warm", "cold-disk"})
        self.assertEqual({r["median"] for r in secs["warm"]["rows"]}, {9.0})
        self.assertEqual(len(secs["warm"]["rows"]), len([r for r in self.rep["results"] if r["condition"] == "warm"]))
        self.assertNotIn(9.0, {r["median"] for r in secs["cold-disk"]["rows"]})

    def test_readme_rewritten_between_markers_only(self):
        path = os.path.join(self.tmp, "README.md")
        before, after = "# Title\n\ntext before\n", "\ntext after\n"
        with open(path, "w") as f:
            f.write(before + report.README_BEGIN + "\nold table\n" + report.README_END + after)
        table = report.readme_table(self.rep)
        report.update_readme(path, table)
        report.update_readme(path, table)  # idempotent
        with open(path) as f:
            text = f.read()
        self.assertEqual(text, before + report.README_BEGIN + "\n" + table + "\n" + report.README_END + after)
        self.assertIn("| tool | small4k, warm | small4k, cold-disk |", table)
        self.assertIn("| `uring-sync` | **0.50 s (4.0x)** | **2.00 s (4.0x)** |", table)
        self.assertIn("| `tar cf - \\| tar xf -` | – | – |", table)

    def test_scenario_rows_and_ratios(self):
        md = report.markdown(self.rep)
        self.assertIn("### Re-runs and options: small4k (100K x 4 KiB in 100 dirs), warm: source on tmpfs, "
                      "fresh tmpfs destination (warm caches)", md)
        # median s, min-max, the full copy's median, median of per-rep ratios, vs uring-sync's no-op
        self.assertIn("| no-op re-run into a complete copy | uring-sync | 0.110 | 0.100–0.120 | 0.500 | 0.20 | 1.0x | 3/3 | ok |", md)
        self.assertIn("| no-op re-run into a complete copy | rsync -a | 0.660 | 0.600–0.700 | 2.200 | 0.30 | 6.0x |", md)
        self.assertIn("| no-op re-run into a complete copy | rclone copy (local) | 1.200 |", md)
        self.assertIn("| resume: re-run after SIGKILL at ~50% (killed at 49% of the files) | uring-sync | 0.300 |", md)
        self.assertIn("| full copy with --verify | uring-sync | – | – | – | not available: `uring-sync --help` does not "
                      "list --verify |", md)
        self.assertIn("| full copy with --fsync | uring-sync | 1.000 | 0.900–1.100 | 0.500 | 2.00 | – | 3/3 | ok |", md)

    def test_scenarios_in_readme_table(self):
        table = report.readme_table(self.rep)
        self.assertIn("| scenario | small4k, warm |", table)
        self.assertIn("| no-op re-run into a complete copy: `uring-sync` | **0.11 s (0.20 of full)** |", table)
        self.assertIn("| no-op re-run into a complete copy: `rsync -a` | 0.66 s (0.30 of full) |", table)
        self.assertIn("| resume: re-run after SIGKILL at ~50%: `uring-sync` | **0.30 s (0.60 of full)** |", table)
        self.assertIn("| full copy with --verify: `uring-sync` | not available |", table)

    def test_results_without_scenarios(self):
        del self.rep["scenarios"]  # results.json of a run before scenarios existed
        self.assertNotIn("Re-runs", report.markdown(self.rep))
        self.assertNotIn("Re-runs", report.readme_table(self.rep))

    def test_readme_without_markers_is_refused(self):
        path = os.path.join(self.tmp, "README.md")
        with open(path, "w") as f:
            f.write("# no markers\n")
        with self.assertRaises(SystemExit):
            report.update_readme(path, "x")

    def test_chart_script_has_every_section(self):
        script = report.gnuplot_script(self.rep, "/nonexistent/out.png")
        self.assertIn("set multiplot layout 2,1", script)
        self.assertEqual(script.count("plot $s"), 2)
        self.assertIn('"limit: sequential" 0.390625', script)  # bytes / bandwidth

    def test_chart_png(self):
        if shutil.which("gnuplot") is None:
            self.skipTest("gnuplot not installed (make bench-deps)")
        png = os.path.join(self.tmp, "results.png")
        self.assertTrue(report.chart(self.rep, png))
        with open(png, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


if __name__ == "__main__":
    unittest.main()
