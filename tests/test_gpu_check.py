"""benchmarks/gpu_check.py runs here in its CPU smoke mode (tiny model, smallest steps),
so the script that checks the CUDA-only paths is known to work when a GPU comes."""

from __future__ import annotations

import json
from pathlib import Path


def test_the_gpu_check_runs_on_cpu_and_writes_what_it_measured(tmp_path: Path):
    import importlib.util

    path = Path(__file__).parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    main = module.main
    out = tmp_path / "check.json"
    assert main(["--device", "cpu", "--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    checks = report["checks"]
    assert set(checks) == {"bf16_learner", "hf_engine", "colocate_offload", "async"}
    for name in ("bf16_learner", "hf_engine", "colocate_offload"):
        assert checks[name]["ran"] and checks[name]["ok"], checks[name]
    assert checks["bf16_learner"]["seconds"] > 0 and "objective" in checks["bf16_learner"]
    assert checks["hf_engine"]["tokens_per_s"] > 0
    assert checks["hf_engine"]["logp_diff_max"] < 1e-4  # top-p 0.9: engine == learner
    assert checks["async"]["ok"] and (checks["async"]["ran"] or "not" in checks["async"]["reason"])
