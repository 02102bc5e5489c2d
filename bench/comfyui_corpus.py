"""How many of the public ComfyUI example workflows in tests/data/comfyui import and validate.

    python bench/comfyui_corpus.py"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> int:
    from comfyui_corpus import check, corpus_files
    ok = 0
    files = corpus_files()
    for f in files:
        good, how = check(f)
        ok += good
        print(f"{'ok  ' if good else 'FAIL'} {f.name:<34} {how}")
    print(f"{ok} of {len(files)} ComfyUI workflows import and validate")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
