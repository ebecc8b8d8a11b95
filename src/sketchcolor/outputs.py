"""Where ``colorize`` writes: output paths checked against the inputs before any work.

The rules (issue 10, "never destroy a user's file"):

- an input (a sketch, the reference) is never written onto, whatever the flags: the same path,
  a symlink to it or a hard link of it all count (:func:`same_file`);
- an existing file the user did not name (``-o FOLDER`` makes ``FOLDER/NAME.png``) is replaced
  only with ``overwrite``; a file named outright (``-o out.png``) may be replaced;
- an empty path is an error, and so is an output extension that cannot be written;
- a folder run never writes into its own input folder without ``overwrite``;
- every sketch of a folder run gets its own output name (:func:`output_names`);
- a second process writing the same output fails at once (:func:`output_lock`).

A problem with the whole run raises :class:`~sketchcolor.errors.SketchColorError`; in a folder
run a problem with one sketch's output refuses that sketch alone (:attr:`FolderPlan.refused`).
A root utility: it imports only :mod:`sketchcolor.errors` and :mod:`sketchcolor.formats`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from sketchcolor.errors import ImageError, SketchColorError
from sketchcolor.formats import OUTPUT_EXTENSIONS

Inputs = Sequence[tuple[str, Path]]  # (role, path), e.g. ("sketch", Path("a.png")), ("reference", ...)


@dataclass(frozen=True)
class Target:
    """One sketch and the files its results go to (``layer``: the color layer, or None)."""

    sketch: Path
    output: Path
    layer: Path | None = None


@dataclass
class FolderPlan:
    """A folder run: the sketches to colorize, one line per sketch refused, one per renamed output;
    with ``resume``, the sketches whose outputs already exist (``done``: skipped, not refused)."""

    targets: list[Target] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    done: list[Target] = field(default_factory=list)


def check_output_extension(path: Path) -> None:
    """Raise :class:`ImageError` unless ``path`` ends in one of :data:`OUTPUT_EXTENSIONS`."""
    if path.suffix.lower() not in OUTPUT_EXTENSIONS:
        ext = repr(path.suffix) if path.suffix else "(none)"
        raise ImageError(f"{path}: unsupported output extension {ext} (supported: {', '.join(OUTPUT_EXTENSIONS)})")


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file or folder: the same inode when both exist (symlinks
    followed, hard links included), else the same path once symlinks are resolved."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:  # unreadable: fall back to comparing the paths
        pass
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def output_names(files: Sequence[Path]) -> tuple[dict[Path, str], list[tuple[Path, str, Path]]]:
    """A distinct ``.png`` name for each of ``files`` (names compared case-blind, for macOS and
    Windows): ``STEM.png``, or ``NAME.png`` where stems collide (``a.png`` and ``a.jpg`` become
    ``a.png.png`` and ``a.jpg.png``). Where that still collides (``a.gif``, ``a.png`` and
    ``a.gif.png``), the later file in ``files``' order gets ``BASE-2.png`` (``-3``, ...).

    Returns the names and, for each renamed file, ``(file, name, file whose name it wanted)``."""
    stems = Counter(f.stem.casefold() for f in files)
    wanted = {f: f"{f.stem}.png" if stems[f.stem.casefold()] == 1 else f"{f.name}.png" for f in files}
    taken = {n.casefold() for n in wanted.values()}
    owner: dict[str, Path] = {}
    names: dict[Path, str] = {}
    renamed: list[tuple[Path, str, Path]] = []
    for f in files:
        name = wanted[f]
        if name.casefold() in owner:
            k = 2
            while f"{name[:-4]}-{k}.png".casefold() in taken:
                k += 1
            renamed.append((f, f"{name[:-4]}-{k}.png", owner[name.casefold()]))
            name = f"{name[:-4]}-{k}.png"
            taken.add(name.casefold())
        owner[name.casefold()] = f
        names[f] = name
    return names, renamed


def _non_empty(raw: str, option: str) -> str:
    """``raw``, unless it is empty or blank (``-o "$UNSET"``): then one line saying so."""
    if not raw.strip():
        raise SketchColorError(f"{option} is empty: give an output file ({', '.join(OUTPUT_EXTENSIONS)}) or a folder")
    return raw


def _is_folder(raw: str) -> bool:
    """``raw`` names a folder: an existing one, a trailing ``/``, or no extension."""
    path = Path(raw)
    return path.is_dir() or raw.endswith(("/", os.sep)) or not path.suffix


def _problem(dst: Path, inputs: Inputs, named: bool, overwrite: bool, option: str) -> str | None:
    """Why ``dst`` must not be written, or None. ``named``: the user gave this very file."""
    for role, src in inputs:
        if same_file(dst, src):
            also = "" if os.path.abspath(dst) == os.path.abspath(src) else f" {src}"
            return f"{dst}: is the input {role}{also}; an input is never overwritten, choose another {option}"
    if not named and not overwrite and os.path.lexists(dst):
        return f"{dst}: already exists; not replaced without --overwrite"
    return None


def _single(raw: str, sketch: Path, inputs: Inputs, overwrite: bool, option: str) -> Path:
    """The file ``option`` (``-o`` / ``--color-layer``) makes for one ``sketch``, checked."""
    path, named = Path(_non_empty(raw, option)), True
    if _is_folder(raw):
        if path.exists() and not path.is_dir():
            raise SketchColorError(f"{path}: exists and is not a folder; name an output file ({', '.join(OUTPUT_EXTENSIONS)}) or a folder")
        path, named = path / f"{sketch.stem}.png", False
    check_output_extension(path)
    if problem := _problem(path, inputs, named, overwrite, option):
        raise SketchColorError(problem)
    return path


def plan_file(raw: str, inputs: Inputs, overwrite: bool, suffix: str, default_name: str, option: str = "-o") -> Path:
    """Where a non-image output goes (``export``'s ``.onnx`` file): ``raw`` names a file ending in
    ``suffix`` (which may be replaced), or a folder that gets ``default_name`` (an existing one
    replaced only with ``overwrite``); never one of ``inputs``. Raises :class:`SketchColorError`
    with one line."""
    if not raw.strip():
        raise SketchColorError(f"{option} is empty: give a {suffix} file or a folder")
    path, named = Path(raw), True
    if _is_folder(raw):
        if path.exists() and not path.is_dir():
            raise SketchColorError(f"{path}: exists and is not a folder; name a {suffix} file or a folder")
        path, named = path / default_name, False
    if path.suffix.lower() != suffix:
        raise SketchColorError(f"{path}: the output must be a {suffix} file")
    if problem := _problem(path, inputs, named, overwrite, option):
        raise SketchColorError(problem)
    return path


def _references(reference: Path | Sequence[Path]) -> list[tuple[str, Path]]:
    refs = [reference] if isinstance(reference, (str, os.PathLike)) else list(reference)
    return [("reference", Path(r)) for r in refs]


def plan_single(sketch: Path, reference: Path | Sequence[Path], output: str, layer: str | None, overwrite: bool) -> Target:
    """Where one sketch's results go: ``output`` (``-o``, a file or a folder) and ``layer``
    (``--color-layer``, a ``.png`` file or a folder, or None), both checked against the inputs
    (the sketch, the reference or references) and against each other. Raises
    :class:`SketchColorError` with one line."""
    inputs = [("sketch", sketch), *_references(reference)]
    out = _single(output, sketch, inputs, overwrite, "-o")
    if layer is None:
        return Target(sketch, out)
    lay = _single(layer, sketch, inputs, overwrite, "--color-layer")
    if lay.suffix.lower() != ".png":
        raise SketchColorError(f"{lay}: the color layer has transparency and is written as PNG; name it .png")
    if same_file(lay, out):
        raise SketchColorError(f"{lay}: is also the -o file; the color layer needs a file of its own")
    return Target(sketch, out, lay)


def _folder(raw: str, sketches: Path, overwrite: bool, option: str) -> Path:
    """The folder ``option`` names for a folder run, checked."""
    path = Path(_non_empty(raw, option))
    if path.exists() and not path.is_dir():
        raise SketchColorError(f"{path}: exists and is not a folder; for a folder of sketches, {option} must be a folder")
    if not _is_folder(raw):
        raise SketchColorError(f"{path}: for a folder of sketches, {option} must be a folder")
    if not overwrite and same_file(path, sketches):
        raise SketchColorError(f"{path}: is the input folder; outputs are not written among the sketches without "
                               f"--overwrite (choose another {option})")
    return path


def plan_folder(sketches: Path, files: Sequence[Path], reference: Path | Sequence[Path], output: str,
                layer: str | None, overwrite: bool, resume: bool = False) -> FolderPlan:
    """Where each of ``files`` (the pictures of the folder ``sketches``) has its results written:
    ``output`` / NAME and ``layer`` / NAME (:func:`output_names`). A folder-wide problem raises
    :class:`SketchColorError`; a sketch whose output is an input, or an existing file without
    ``overwrite``, is refused alone (one line in :attr:`FolderPlan.refused`).

    With ``resume`` (an interrupted run started again), a sketch whose output exists (and its
    color layer, when one is asked for) is done: it goes to :attr:`FolderPlan.done`, not redone.
    Its output was written atomically, so it is whole; whether it reads as a picture is the
    caller's check. A sketch whose output is missing is redone, and its color layer, left by
    the interrupted run (the layer is written first), may be replaced."""
    out = _folder(output, sketches, overwrite, "-o")
    lay = _folder(layer, sketches, overwrite, "--color-layer") if layer is not None else None
    if lay is not None and same_file(lay, out):
        raise SketchColorError(f"{lay}: is also the -o folder; the color layers need a folder of their own")
    names, renamed = output_names(files)
    inputs = [*(("sketch", f) for f in files), *_references(reference)]
    plan = FolderPlan(renamed=[f"{f}: written as {out / name}, since {names[other]} is {other.name}'s output"
                               for f, name, other in renamed])
    for f in files:
        dst = out / names[f]
        layer_dst = lay / names[f] if lay is not None else None
        resumed = resume and not os.path.lexists(dst)  # an unfinished frame: its layer may be redone
        problem = _problem(dst, inputs, False, overwrite, "-o") or (
            _problem(layer_dst, inputs, False, overwrite or resumed, "--color-layer") if layer_dst is not None else None)
        finished = resume and os.path.isfile(dst) and (layer_dst is None or os.path.isfile(layer_dst))
        is_input = _problem(dst, inputs, False, True, "-o") or (
            _problem(layer_dst, inputs, False, True, "--color-layer") if layer_dst is not None else None)
        if finished and not is_input:
            plan.done.append(Target(f, dst, layer_dst))
        elif problem:
            plan.refused.append(problem)
        else:
            plan.targets.append(Target(f, dst, layer_dst))
    return plan


def lock_file(target: Path) -> Path:
    """The lock file for writing ``target``: in the system's temporary folder, named by a hash of
    ``target``'s resolved path, so that no lock file is left beside the user's pictures and every
    spelling of one path (relative, through a symlink) shares one lock."""
    key = hashlib.sha256(os.path.normcase(os.path.realpath(target)).encode()).hexdigest()[:32]
    folder = Path(tempfile.gettempdir()) / "sketchcolor-locks"
    folder.mkdir(exist_ok=True)
    return folder / f"{key}.lock"


@contextmanager
def output_lock(targets: Iterable[Path]) -> Iterator[None]:
    """Hold an OS file lock (``filelock``: ``fcntl.flock`` on POSIX, released by the kernel if
    the process dies) on each of ``targets`` (output files, or the output folder of a folder run)
    for the block; raise :class:`SketchColorError` at once, with one line, when another process
    holds one of them."""
    with ExitStack() as stack:
        for target in dict.fromkeys(Path(t) for t in targets):  # one lock per path, in order
            lock = FileLock(lock_file(target), timeout=0)
            try:
                stack.enter_context(lock)
            except Timeout:
                raise SketchColorError(f"{target}: another sketchcolor process is writing this output; "
                                       f"wait for it or choose another -o") from None
        yield
