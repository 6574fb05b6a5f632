"""Insert (and remove) clearly marked unlearning blocks in a reference `train.py`.

The patcher recognises stylegan2-ada-pytorch and stylegan3 by their anchor lines (each must occur
exactly once), inserts whole lines only, and marks every inserted line's block with begin/end markers,
so `--revert` restores the original file byte for byte. Nothing of the reference files is shipped:
the blocks are generated from `patches.options`.
"""
import os
import re
from dataclasses import dataclass
from typing import List, Tuple

import click

from patches.options import click_decorator_lines

BEGIN = "# >>> stylegan-unlearn {name} >>>"
END = "# <<< stylegan-unlearn {name} <<<"
_MARKER = re.compile(r"^\s*# (>>>|<<<) stylegan-unlearn ")


class PatchError(Exception):
    """A train.py that cannot be patched or reverted safely; nothing was written."""


@dataclass(frozen=True)
class Insertion:
    """A block placed before or after the line that equals `anchor` (stripped of its line ending)."""

    name: str
    anchor: str
    where: str  # 'before' or 'after'
    body: Tuple[str, ...]  # lines without indentation; indented like the anchor


@dataclass(frozen=True)
class Flavour:
    """One reference repository: its name, the anchors that identify it, and the blocks to insert."""

    key: str
    repo: str
    revision: str
    insertions: Tuple[Insertion, ...]


def _flavours() -> Tuple[Flavour, ...]:
    decorators = tuple(click_decorator_lines())
    ada = Flavour(
        key="ada", repo="stylegan2-ada-pytorch", revision="d72cc7d",
        insertions=(
            Insertion("options", "def main(ctx, outdir, dry_run, **config_kwargs):", "before", decorators),
            Insertion("pop-options", "        run_desc, args = setup_training_loop_kwargs(**config_kwargs)", "before", (
                "from patches.options import apply_unlearning_options, pop_unlearning_options",
                "unlearn_opts = pop_unlearning_options(config_kwargs)",
            )),
            Insertion("loss", "        run_desc, args = setup_training_loop_kwargs(**config_kwargs)", "after", (
                "run_desc = apply_unlearning_options(args, run_desc, dict(config_kwargs, **unlearn_opts), flavour='ada')",
            )),
        ),
    )
    sg3 = Flavour(
        key="sg3", repo="stylegan3", revision="c233a91",
        insertions=(
            Insertion("options", "def main(**kwargs):", "before", decorators),
            Insertion("loss", "    launch_training(c=c, desc=desc, outdir=opts.outdir, dry_run=opts.dry_run)", "before", (
                "from patches.options import apply_unlearning_options",
                "desc = apply_unlearning_options(c, desc, opts, flavour='sg3')",
            )),
        ),
    )
    return ada, sg3


FLAVOURS = _flavours()


def _split_lines(text: str) -> List[str]:
    return text.splitlines(keepends=True)


def _newline_of(lines: List[str]) -> str:
    for line in lines:
        if line.endswith("\r\n"):
            return "\r\n"
        if line.endswith("\n"):
            return "\n"
    return "\n"


def _strip_eol(line: str) -> str:
    return line.rstrip("\r\n")


def _find_anchor(lines: List[str], anchor: str) -> List[int]:
    return [i for i, line in enumerate(lines) if _strip_eol(line) == anchor]


def recognise(text: str) -> Flavour:
    """Which reference train.py this is; PatchError if none (or both) match exactly."""
    lines = _split_lines(text)
    matches = []
    for flavour in FLAVOURS:
        counts = {ins.anchor: len(_find_anchor(lines, ins.anchor)) for ins in flavour.insertions}
        if all(n >= 1 for n in counts.values()):
            duplicated = [a for a, n in counts.items() if n > 1]
            if duplicated:
                raise PatchError(f"this looks like {flavour.repo}'s train.py, but the anchor line "
                                 f"'{duplicated[0].strip()}' appears more than once; refusing to guess where to patch")
            matches.append(flavour)
    if len(matches) != 1:
        raise PatchError("not a recognised train.py: expected the anchor lines of stylegan2-ada-pytorch "
                         f"({FLAVOURS[0].revision}) or stylegan3 ({FLAVOURS[1].revision}); see docs for the anchors")
    return matches[0]


def _block(ins: Insertion, indent: str, newline: str) -> List[str]:
    body = [BEGIN.format(name=ins.name)] + list(ins.body) + [END.format(name=ins.name)]
    return [indent + line + newline for line in body]


def _indent_for(ins: Insertion) -> str:
    # Decorators sit at column 0; statements take the anchor's indentation.
    return "" if ins.name == "options" else ins.anchor[: len(ins.anchor) - len(ins.anchor.lstrip())]


def remove_blocks(text: str) -> str:
    """The text with every stylegan-unlearn block removed; PatchError if the markers are unbalanced."""
    out, inside = [], None
    for line in _split_lines(text):
        stripped = _strip_eol(line).strip()
        if stripped.startswith("# >>> stylegan-unlearn "):
            if inside is not None:
                raise PatchError("nested stylegan-unlearn markers: the file was edited by hand; revert it manually")
            inside = stripped
            continue
        if stripped.startswith("# <<< stylegan-unlearn "):
            if inside is None:
                raise PatchError("an end marker without its begin marker: the file was edited by hand")
            inside = None
            continue
        if inside is None:
            out.append(line)
    if inside is not None:
        raise PatchError("a stylegan-unlearn block is not closed: the file was edited by hand")
    return "".join(out)


def apply_blocks(original: str) -> str:
    """The patched text for an unpatched reference train.py."""
    flavour = recognise(original)
    lines = _split_lines(original)
    newline = _newline_of(lines)
    before, after = {}, {}
    for ins in flavour.insertions:
        (index,) = _find_anchor(lines, ins.anchor)
        target = before if ins.where == "before" else after
        target.setdefault(index, []).extend(_block(ins, _indent_for(ins), newline))
    out = []
    for i, line in enumerate(lines):
        out.extend(before.get(i, []))
        if i in after and not line.endswith(("\n", "\r")):
            line += newline  # an anchor on the last line without a newline
        out.append(line)
        out.extend(after.get(i, []))
    return "".join(out)


def has_blocks(text: str) -> bool:
    return any(_MARKER.match(line) for line in _split_lines(text))


def _check_reversible(original: str, patched: str) -> None:
    if remove_blocks(patched) != original:
        raise PatchError("internal error: the patch would not revert byte for byte; nothing written")


def plan(text: str, revert: bool = False) -> Tuple[str, str]:
    """(new text, status) for a patch or revert; status is 'patched', 'reverted' or 'unchanged'."""
    if revert:
        if not has_blocks(text):
            return text, "unchanged"
        original = remove_blocks(text)
        recognise(original)
        return original, "reverted"
    if has_blocks(text):
        original = remove_blocks(text)
        if apply_blocks(original) != text:
            raise PatchError("train.py has stylegan-unlearn blocks that differ from this version's: run "
                             "'stylegan-unlearn patch --revert' with the version that wrote them, or restore the file")
        return text, "unchanged"
    patched = apply_blocks(text)
    _check_reversible(text, patched)
    return patched, "patched"


def _train_py(path: str) -> str:
    candidate = os.path.join(path, "train.py") if os.path.isdir(path) else path
    if not os.path.isfile(candidate):
        raise PatchError(f"no train.py at {candidate}; give the path of your stylegan2-ada-pytorch or stylegan3 checkout")
    return candidate


def _write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.stylegan-unlearn.tmp"
    mode = os.stat(path).st_mode
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def patch_file(path: str, revert: bool = False, check: bool = False) -> str:
    """Patch (or revert) the train.py at/inside `path`; returns the status. `check` writes nothing."""
    train_py = _train_py(path)
    with open(train_py, encoding="utf-8", newline="") as f:
        text = f.read()
    new_text, status = plan(text, revert=revert)
    if check:
        if has_blocks(text):
            return "patched" if not revert else "would revert"
        return "unpatched" if not revert else "unchanged"
    if new_text != text:
        _write_atomically(train_py, new_text)
    return status


def unified_diff(flavour: Flavour) -> str:
    """A unified diff (`patch -p1`) equivalent to the patcher, for users who prefer `patch` or `git apply`.

    Each hunk rewrites one anchor line (unique in the reference file) as block + anchor + block, with no
    other context, so `patch` places it by content alone; the line numbers are those of a skeleton that
    holds only the anchors, and `patch` reports the offset. Generated from the blocks, never from
    reference text beyond the documented anchors.
    """
    anchors: List[str] = []
    for ins in flavour.insertions:
        if ins.anchor not in anchors:
            anchors.append(ins.anchor)
    out = ["--- a/train.py\n", "+++ b/train.py\n"]
    shift = 0
    for number, anchor in enumerate(anchors, start=1):
        def blocks(where: str) -> List[str]:
            return [line for ins in flavour.insertions if ins.anchor == anchor and ins.where == where
                    for line in _block(ins, _indent_for(ins), "\n")]
        new = blocks("before") + [anchor + "\n"] + blocks("after")
        out.append(f"@@ -{number} +{number + shift},{len(new)} @@\n")
        out.append("-" + anchor + "\n")
        out.extend("+" + line for line in new)
        shift += len(new) - 1
    return "".join(out)


def diff_filename(flavour: Flavour) -> str:
    return f"{flavour.repo}-{flavour.revision}.diff"


@click.command("patch")
@click.argument("checkout", type=click.Path(exists=True, file_okay=True, dir_okay=True))
@click.option("--revert", is_flag=True, help="Remove the stylegan-unlearn blocks, restoring the file byte for byte.")
@click.option("--check", is_flag=True, help="Only report whether train.py is patched; write nothing.")
def patch_command(checkout: str, revert: bool, check: bool) -> None:
    """Add --mode=adapt|unlearn to the train.py of your own stylegan2-ada-pytorch or stylegan3 CHECKOUT."""
    try:
        train_py = _train_py(checkout)
        with open(train_py, encoding="utf-8", newline="") as f:
            flavour = recognise(remove_blocks(f.read()))
        status = patch_file(checkout, revert=revert, check=check)
    except PatchError as err:
        raise click.ClickException(f"{err} (nothing was written)")
    click.echo(f"{train_py} ({flavour.repo}): {status}")
