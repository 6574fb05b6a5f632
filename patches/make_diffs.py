"""Write the shipped unified diffs (`patches/<repo>-<revision>.diff`) from the patcher's own blocks.

Run `python -m patches.make_diffs` after changing `patches.options` or `patches.patcher`; a test checks
that the committed diffs are current.
"""
import os

from patches.patcher import FLAVOURS, diff_filename, unified_diff

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    for flavour in FLAVOURS:
        path = os.path.join(HERE, diff_filename(flavour))
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(unified_diff(flavour))
        os.replace(tmp, path)  # complete or absent
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
