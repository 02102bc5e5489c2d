"""How many of the public ComfyUI workflows in tests/data/comfyui import and validate, per source
(ComfyUI_examples, ComfyUI's built-in templates) and in total.

    python bench/comfyui_corpus.py"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> int:
    from comfyui_corpus import SOURCES, check, corpus_files
    total = good_total = 0
    lines = []
    for source in SOURCES:
        files = corpus_files(source)
        ok = 0
        for f in files:
            good, how = check(f)
            ok += good
            print(f"{'ok  ' if good else 'FAIL'} {f.name:<42} {how}")
        lines.append(f"{ok} of {len(files)} {source} workflows import and validate")
        total, good_total = total + len(files), good_total + ok
    print("\n".join(lines))
    print(f"{good_total} of {total} ComfyUI workflows import and validate")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
