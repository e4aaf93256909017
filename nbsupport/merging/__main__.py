"""``python -m nbsupport.merging CONFIG.yaml OUT_DIR``: a mergekit-style merge of safetensors files."""

from __future__ import annotations

import argparse
import sys
import time

from nbsupport.merging.files import merge_files
from nbsupport.merging.validate import MergeError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nbsupport.merging", description=__doc__)
    ap.add_argument("config", help="mergekit YAML: merge_method, base_model, models or slices, parameters (scalars, "
                    "gradients, filter lists), dtype (compute), out_dtype (written); see docs/merging.md")
    ap.add_argument("out_dir", help="output folder (sharded safetensors + index JSON)")
    ap.add_argument("--max-shard-size", default="2GB", help="shard size, e.g. 2GB or 500MB (default 2GB)")
    ap.add_argument("--overwrite", action="store_true", help="replace a non-empty out_dir")
    ap.add_argument("--impl", choices=["reference", "fast", "triton"], help="kernel path for the merge core")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        info = merge_files(args.config, args.out_dir, max_shard_size=args.max_shard_size,
                           overwrite=args.overwrite, impl=args.impl, progress=not args.quiet)
    except MergeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # Path.resolve() before Python 3.13: "Symlink loop from '<path>'"
        if not str(e).startswith("Symlink loop"):
            raise
        print(f"error: {e}: a symbolic link that points back to itself; fix or remove it", file=sys.stderr)
        return 2
    except OSError as e:  # ELOOP from Python 3.13, an unreadable input, a full disk
        print(f"error: {e.filename or args.out_dir}: {e.strerror or e} (errno {e.errno})", file=sys.stderr)
        return 2
    print(f"{info['method']}: {info['tensors']} tensors, {info['bytes'] / 1e9:.3f} GB in {info['shards']} "
          f"shard(s) -> {info['out_dir']} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
