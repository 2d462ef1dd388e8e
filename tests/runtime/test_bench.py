import json

from click.testing import CliRunner

from edgedet.cli import cli


def test_bench_json_fields_and_consistency(tmp_path, exported):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", str(exported["decoded"]), str(exported["raw"]), "--iters", "8",
                                      "--warmup", "1", "--threads", "1", "--end-to-end", "--json", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["matmul_peak_gflops"] > 0
    assert [r["model"] for r in doc["results"]] == [str(exported["decoded"]), str(exported["raw"])]
    for r in doc["results"]:
        assert r["provider"] == "CPUExecutionProvider" and r["iterations"] == 8
        for key in ("size_mb", "session_ms", "first_run_ms", "p50_ms", "mean_ms", "images_per_s", "e2e_p50_ms",
                    "e2e_images_per_s", "gflops", "achieved_gflops_per_s"):
            assert r[key] > 0, key
        assert r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert abs(r["images_per_s"] - 1000 / r["p50_ms"]) < 1e-6
    assert doc["results"][0]["ratios"] == {"p50": 1.0, "images_per_s": 1.0}
    assert "x first" in result.output and "matmul peak" in result.output
