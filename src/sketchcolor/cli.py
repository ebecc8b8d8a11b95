"""Command line: ``sketchcolor colorize | app | train | info | export | demo`` (and the data/evaluation commands).

Every failure the user can fix ends in one ``error: ...`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from pathlib import Path

from sketchcolor import __version__
from sketchcolor.errors import SaidElsewhere, SketchColorError
from sketchcolor.shipped import shipped_path

DEFAULT_WEIGHTS = shipped_path("weights/default")  # in the wheel, or the checkout's (editable install)


def _colorize_targets(args: argparse.Namespace, weights: Path, references: list[Path], targets: list, folder: bool,
                      done: list | None = None, book_path: Path | None = None) -> int:
    """Colorize each planned target (sketchcolor.outputs.Target) through
    sketchcolor.inference.sequence (batched, the references encoded once, the color book, the
    chain); returns how many were written. In a folder run a bad sketch is one error line and the
    rest go on."""
    if not targets:
        return 0
    from sketchcolor.inference.color_book import ColorBook
    from sketchcolor.inference.pipeline import ColorizePipeline
    from sketchcolor.inference.sequence import SequenceOptions, colorize_sequence

    if args.backend == "onnxruntime":
        pipe = ColorizePipeline.from_onnx(weights)
    else:
        pipe = ColorizePipeline.from_pretrained(weights, device=args.device)
    # decoded and encoded once (and a bad reference fails before any work), not again for every sketch
    refs = pipe.encode_references(references)
    book = None
    if book_path is not None:
        if book_path.is_file():
            book = ColorBook.load(book_path)
            book.check_references(refs.images, str(book_path))
        else:
            book = ColorBook.from_references(refs.images)
    options = SequenceOptions(batch_size=args.batch_size, extract_sketch=args.extract_sketch, fill=args.fill,
                              palette_snap=args.palette_snap, paint_background=args.paint_background, chain=args.chain,
                              fixes=args.fixes)
    return colorize_sequence(pipe, targets, refs, options, done=done or [], book=book, book_path=book_path,
                             progress=folder and not args.quiet, folder=folder)


def _check_done(done: list) -> tuple[list, list[str]]:
    """The resumed frames whose outputs read as pictures, and one line for each that does not."""
    from sketchcolor.data.io import load_image

    ok, bad = [], []
    for t in done:
        try:
            for path in (t.output, t.layer):
                if path is not None:
                    load_image(path)
            ok.append(t)
        except SketchColorError as e:
            bad.append(f"{e}; not replaced without --overwrite")
    return ok, bad


def _colorize(args: argparse.Namespace) -> int:
    from sketchcolor.formats import IMAGE_EXTENSIONS
    from sketchcolor.outputs import output_lock, plan_file, plan_folder, plan_single

    weights = Path(args.weights) if args.weights else DEFAULT_WEIGHTS
    if not args.weights and not (weights / "config.json").is_file():
        raise SketchColorError("no --weights given and no shipped default weights found; train with `sketchcolor train` and pass --weights RUN/model")
    if args.backend == "onnxruntime":
        if args.device not in ("auto", "cpu"):
            raise SketchColorError(f"--backend onnxruntime runs on the CPU; --device {args.device} needs --backend torch")
        if not args.weights and not (weights / "model.onnx").is_file():
            raise SketchColorError("--backend onnxruntime needs an ONNX model: `sketchcolor export --format onnx -o model.onnx`, "
                                   "then --weights model.onnx")
        if len(args.reference) > 1 or args.chain:
            raise SketchColorError("--backend onnxruntime takes one reference (its graph has one reference input); "
                                   "several references and --chain need --backend torch")
    if args.batch_size < 1:
        raise SketchColorError(f"--batch-size must be at least 1, got {args.batch_size}")
    fill = args.fill or ("guided" if args.extract_sketch else "regions")
    if args.color_book is not None and fill != "regions":
        raise SketchColorError("--color-book works on regions: use it with --fill regions")
    if args.fixes is not None:
        from sketchcolor.inference.fixes import Fixes

        args.fixes = Fixes.load(args.fixes)  # a bad file fails here, before any work
        if args.fixes.recolors and fill != "regions":
            raise SketchColorError("--fixes holds recolors, which paint regions: use it with --fill regions")
        if args.fixes.hints and args.backend == "onnxruntime":
            raise SketchColorError("--fixes holds correspondence hints, which need --backend torch "
                                   "(the ONNX graph has no hint input)")
        named = max((h.reference_index for h in args.fixes.hints), default=0)
        if named >= len(args.reference):
            raise SketchColorError(f"--fixes: a hint names reference {named} (counting from 0), but "
                                   f"{len(args.reference)} --reference given")
    sketch, references = Path(args.sketch), [Path(r) for r in args.reference]
    if not sketch.exists():
        raise SketchColorError(f"{sketch}: sketch not found")
    # every output path is checked against the inputs before the model loads (sketchcolor.outputs)
    folder = sketch.is_dir()
    if not folder and (args.resume or args.chain):
        raise SketchColorError(f"{sketch}: --resume and --chain are for a folder of frames; --sketch names one file")
    done: list = []
    if folder:
        files = sorted(p for p in sketch.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise SketchColorError(f"{sketch}: no images in folder")
        plan = plan_folder(sketch, files, references, args.output, args.color_layer, args.overwrite, resume=args.resume)
        for line in plan.renamed:
            print(f"note: {line}", file=sys.stderr)
        done, unreadable = _check_done(plan.done)
        for line in plan.refused + unreadable:  # one line per sketch whose output would replace a file
            print(f"error: {line}", file=sys.stderr)
        targets = plan.targets
    else:
        targets = [plan_single(sketch, references, args.output, args.color_layer, args.overwrite)]
        files = [sketch]
    book_path = None
    if args.color_book is not None:  # read if it exists, then updated: never one of the inputs
        inputs = [*(("sketch", f) for f in files), *(("reference", r) for r in references)]
        book_path = plan_file(args.color_book, inputs, True, suffix=".json", default_name="color_book.json",
                              option="--color-book")
    # a second colorize writing the same output (a file, or a folder run's folder) fails at once
    if folder:
        locked = [Path(args.output)] + ([Path(args.color_layer)] if args.color_layer else [])
    else:
        locked = [p for t in targets for p in (t.output, t.layer) if p is not None]
    if book_path is not None:
        locked.append(book_path)
    with output_lock(locked if targets else []):
        written = _colorize_targets(args, weights, references, targets, folder, done, book_path)
    if folder:
        skipped = f" ({len(done)} already done)" if done else ""
        print(f"colorized {written} of {len(files)} sketches into {Path(args.output)}{skipped}")
        return 0 if written + len(done) == len(files) else 1
    t = targets[0]
    print(f"wrote {t.output}" + (f" and {t.layer}" if t.layer is not None else ""))
    return 0


def _export(args: argparse.Namespace) -> int:
    from sketchcolor.outputs import output_lock, plan_file

    weights = Path(args.weights) if args.weights else DEFAULT_WEIGHTS
    if not args.weights and not (weights / "config.json").is_file():
        raise SketchColorError("no --weights given and no shipped default weights found; pass --weights RUN/model")
    # the artifact's folder and files are inputs: checked before the model loads (sketchcolor.outputs)
    inputs = [("weights", weights), *(("weights file", f) for f in sorted(weights.glob("*")) if f.is_file())]
    out = plan_file(args.output, inputs, args.overwrite, suffix=".onnx", default_name="model.onnx")
    from sketchcolor.models.onnx_export import export_artifact

    with output_lock([out]):
        export_artifact(weights, out, opset=args.opset)
    print(f"wrote {out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from sketchcolor.config import load_config

    cfg = load_config(args.config, args.set)
    if args.dry_run:
        print(cfg.to_json())
        return 0
    if not args.data or not args.out:
        raise SketchColorError("train needs --data DIR and --out RUN (or --dry-run)")
    from sketchcolor.training.loop import fit

    model_dir = fit(cfg, args.data, args.out, resume=args.resume, progress=not args.quiet, init=args.init_from,
                    resume_step=args.resume_step)
    print(f"wrote {model_dir}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from sketchcolor.config import load_config
    from sketchcolor.models.complexity import check_memory, describe, estimate_memory, workers_bytes

    cfg = load_config(args.config, args.set)
    need = check_memory(cfg, training=False, where=args.config, discriminator=True)  # describe() builds G and D and runs G once
    for line in describe(cfg.model):
        print(line)
    workers = workers_bytes(cfg)
    print(f"memory (estimate) {need / 2**30:.2f} GiB to colorize, {estimate_memory(cfg, training=True) / 2**30:.2f} GiB "
          f"to train at batch {cfg.train.batch_size}"
          + (f", and {workers / 2**30:.2f} GiB for its {cfg.data.num_workers} DataLoader workers (their picture caches "
             "are sized to what is left)" if workers else ""))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sketchcolor.demo import run_demo

    grid = run_demo(Path(args.out), weights=Path(args.weights) if args.weights else None, train_tiny=args.train_tiny,
                    steps=args.steps, progress=not args.quiet)
    print(f"wrote {grid}")
    return 0


def _app(args: argparse.Namespace) -> int:
    weights = Path(args.weights) if args.weights else DEFAULT_WEIGHTS
    if not (weights / "config.json").is_file():
        raise SketchColorError(f"{weights}: no model folder (config.json + model.safetensors); pass --weights")
    if not 1 <= args.port <= 65535:
        raise SketchColorError(f"--port must lie in 1-65535, got {args.port}")
    try:
        from sketchcolor.app.ui import serve
    except ImportError as e:
        raise SketchColorError(f"the web app needs the 'app' extra: pip install 'sketchcolor[app]' ({e})") from None
    serve(weights, host=args.host, port=args.port, device=args.device, examples=shipped_path("examples"),
          open_browser=args.open)
    return 0


def _prepare_data(args: argparse.Namespace) -> int:
    from sketchcolor.data.sources.prepare import prepare
    from sketchcolor.hed_sketches import add_hed_sketches

    if args.source == "hed":
        summary = add_hed_sketches(args.out, size=args.size or 128, progress=not args.quiet)
    else:
        summary = prepare(args.source, args.out, size=args.size or 256, src=args.source_dir, limit=args.limit,
                          workers=args.workers, progress=not args.quiet)
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(summary["outcomes"].items()))
    splits = ", ".join(f"{k} {v}" for k, v in sorted(summary["splits"].items()))
    print(f"{args.source}: wrote {summary['written']} images of {summary['drawings']} drawings into {args.out} "
          f"({splits}); files: {outcomes}")
    return 0


def _prepare_weights(args: argparse.Namespace) -> int:
    from sketchcolor.prepare_weights import default_cache_dir, prepare_weights

    for name, path in prepare_weights(Path(args.out) if args.out else default_cache_dir()).items():
        print(f"{name}: {path}")
    return 0


def _plot_logs(args: argparse.Namespace) -> int:
    from sketchcolor.evaluation.curves import plot_curves

    run = Path(args.run)
    logdir = run / "logs" if (run / "logs").is_dir() else run
    print(f"wrote {plot_curves(logdir, args.output, title=args.title or run.name)}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from sketchcolor.evaluation.evaluate import comparison_grid, evaluate, load_test_pictures
    from sketchcolor.evaluation.methods import build_methods, load_feature_vgg
    from sketchcolor.evaluation.report import markdown_table, write_json
    from sketchcolor.inference.pipeline import ColorizePipeline

    weights = Path(args.weights) if args.weights else DEFAULT_WEIGHTS
    pipe = ColorizePipeline.from_pretrained(weights, device=args.device)
    pictures = load_test_pictures(args.data, args.size, args.split, args.limit)
    chosen = build_methods(pipe, args.compare, fill=args.fill, palette_snap=args.palette_snap, device=args.device,
                           baselines=not args.no_baselines)
    vgg = None if args.no_vgg else load_feature_vgg()
    results, raw, meta = evaluate(chosen.methods, pipe, pictures, seed=args.seed, fid=not args.no_fid, vgg=vgg,
                                  attention_of=chosen.attention_of, progress=not args.quiet)
    meta.update({"weights": str(weights), "data": str(args.data), "split": args.split})
    out = Path(args.out)
    write_json(results, out / "results.json", meta)
    table = markdown_table(results)
    (out / "results.md").write_text(table + "\n")
    print(table)
    if args.grid:
        print(f"wrote {comparison_grid(pictures, raw, pipe, args.seed, args.grid, out / 'grid.png')}")
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return 0


def _ablate(args: argparse.Namespace) -> int:
    from sketchcolor.config import load_config
    from sketchcolor.evaluation.ablation import run_ablation
    from sketchcolor.evaluation.report import markdown_table, write_json

    cfg = load_config(args.recipe, args.set)
    results = run_ablation(cfg, args.data, args.out, args.budget, split=args.split, limit=args.limit,
                           fid=not args.no_fid, vgg=not args.no_vgg, progress=not args.quiet)
    out = Path(args.out)
    write_json(results, out / "ablation.json", {"recipe": str(args.recipe), "budget": args.budget, "overrides": args.set})
    table = markdown_table(results, method_header="losses")
    (out / "ablation.md").write_text(table + "\n")
    print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sketchcolor", description="Reference-based sketch colorization (Lee et al., CVPR 2020).")
    p.add_argument("--version", action="version", version=f"sketchcolor {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("colorize", help="paint a sketch (or a folder of sketches) in a reference's colors")
    c.add_argument("--sketch", required=True, help="line drawing, or a folder of them")
    c.add_argument("--reference", required=True, nargs="+", metavar="REFERENCE",
                   help="color picture whose colors to use; several (a character sheet, views of one character): "
                        "the attention runs over all of their cells together")
    c.add_argument("-o", "--output", required=True,
                   help="output file (.png, .jpg, .webp, .bmp, .tif) or folder; never an input file")
    c.add_argument("--overwrite", action="store_true",
                   help="replace existing files in the -o / --color-layer folder, and allow -o to be the sketch folder "
                        "(input files are never replaced)")
    c.add_argument("--weights", help="model folder (config.json + model.safetensors); default: shipped weights. "
                                     "With --backend onnxruntime: a .onnx file or a folder holding model.onnx")
    c.add_argument("--extract-sketch", action="store_true", help="turn a color/gray picture into line art first (XDoG)")
    c.add_argument("--fill", choices=["regions", "guided", "none"], default=None,
                   help="regions: flat color per line-art region (default for line art); guided: edge-aware "
                        "upsampling (default with --extract-sketch); none: the network's raw output")
    c.add_argument("--palette-snap", type=float, default=0.0, metavar="S",
                   help="pull each region's color toward the reference's nearest palette color, 0 (off) to 1")
    c.add_argument("--paint-background", action="store_true",
                   help="with --fill regions: paint the regions around the drawing too (full-frame drawings); "
                        "by default they stay white paper")
    c.add_argument("--color-layer", metavar="OUT",
                   help="also write the paint alone, without lines, as a transparent PNG (a folder for a folder run)")
    c.add_argument("--batch-size", type=int, default=8, metavar="N",
                   help="frames per forward pass in a folder run (default 8); the references are encoded once")
    c.add_argument("--resume", action="store_true",
                   help="folder run started again: skip the frames whose outputs already exist (written atomically, "
                        "so whole) instead of refusing them; the rest are colorized")
    c.add_argument("--color-book", metavar="FILE.json",
                   help="per-character memory of region colors (plain JSON): made if missing, else reused, and "
                        "updated; each frame's regions are snapped to the colors the first frames gave their "
                        "matched reference areas (--fill regions)")
    c.add_argument("--chain", action="store_true",
                   help="animation: colorize frame t with the references and the colorized frame t-1 "
                        "(frames one at a time, in natural name order)")
    c.add_argument("--fixes", metavar="FILE.json",
                   help="apply a user's fixes saved by the web app (`sketchcolor app`): correspondence hints "
                        "(imposed on the attention) and region recolors, points relative to the picture's size")
    c.add_argument("--device", default="auto", help="auto, cpu or cuda")
    c.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch",
                   help="torch (default), or onnxruntime on the CPU: --weights is then a .onnx file (or a folder "
                        "holding model.onnx) made by `sketchcolor export`")
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(func=_colorize)

    ap = sub.add_parser("app", help="the web app: colorize in a browser, see where each color came from, fix it with a click")
    ap.add_argument("--weights", help="model folder (default: shipped weights)")
    ap.add_argument("--host", default="127.0.0.1",
                    help="address to serve on (default 127.0.0.1, this machine only; another address exposes the "
                         "app, without authentication, to whoever can reach it)")
    ap.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--open", action="store_true", help="open the page in a browser")
    ap.set_defaults(func=_app)

    x = sub.add_parser("export", help="export the generator (SCFT attention inside) for deployment without Python")
    x.add_argument("--format", choices=["onnx"], default="onnx", help="onnx (dynamic batch; the config in its metadata)")
    x.add_argument("-o", "--output", required=True, help="a .onnx file, or a folder (gets model.onnx); never an input")
    x.add_argument("--weights", help="model folder (config.json + model.safetensors); default: shipped weights")
    x.add_argument("--overwrite", action="store_true", help="replace an existing model.onnx in the -o folder")
    x.add_argument("--opset", type=int, default=18, help="ONNX opset version (default 18)")
    x.set_defaults(func=_export)

    t = sub.add_parser("train", help="train on a folder of color images (pairs are synthesised)")
    t.add_argument("--config", required=True, help="YAML recipe, e.g. configs/tiny.yaml")
    t.add_argument("--data", help="folder of color images (searched recursively)")
    t.add_argument("--out", help="run folder: checkpoints/, samples/, logs/, model/; a new or empty folder, or a run of "
                                 "the same config (any other folder is refused)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.steps=3 (repeatable)")
    t.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    t.add_argument("--resume", action="store_true",
                   help="continue from the last checkpoint in --out (train.steps, learning rates, cadences may change)")
    t.add_argument("--resume-step", type=int, metavar="STEP",
                   help="resume from the checkpoint at STEP instead of the newest (after a divergence); newer "
                        "checkpoints are moved into checkpoints/abandoned/")
    t.add_argument("--init-from", metavar="ARTIFACT",
                   help="start from a model folder's weights (fresh optimizers and D; steps counted on from its config)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    i = sub.add_parser("info", help="parameter counts of G and D and FLOPs of one forward pass")
    i.add_argument("--config", required=True)
    i.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    i.set_defaults(func=_info)

    pd = sub.add_parser("prepare-data", help="render a drawing collection (or copy a folder) to PNG + manifest, offline")
    pd.add_argument("source", choices=["openmoji", "openclipart", "folder", "hed", "tag2pix", "yumi", "spair", "imagenet",
                                       "celeba", "edges2shoes"],
                    help="a source to render/copy, or `hed` to add HED sketches to a prepared folder")
    pd.add_argument("--out", required=True, help="data folder (several sources can share one)")
    pd.add_argument("--size", type=int, help="longer side of the written images in px (default 256; 128 for hed)")
    pd.add_argument("--source-dir", help="where the source lies (default: node_modules/openmoji, /usr/share/openclipart/svg)")
    pd.add_argument("--limit", type=int, help="only the first N files (for a quick look)")
    pd.add_argument("--workers", type=int, help="parallel processes (default: up to 4)")
    pd.add_argument("-q", "--quiet", action="store_true")
    pd.set_defaults(func=_prepare_data)

    pw = sub.add_parser("prepare-weights", help="convert HED's VGG16 (perceptual loss, HED sketches) and locate the FID Inception")
    pw.add_argument("--out", help="folder for converted weights (default: $SKETCHCOLOR_CACHE or ~/.cache/sketchcolor)")
    pw.set_defaults(func=_prepare_weights)

    pl = sub.add_parser("plot-logs", help="draw a run's loss curves (TensorBoard logs) as a PNG")
    pl.add_argument("run", help="run folder (or its logs/ folder)")
    pl.add_argument("-o", "--output", required=True, help="PNG to write")
    pl.add_argument("--title")
    pl.set_defaults(func=_plot_logs)

    ev = sub.add_parser("evaluate", help="the paper's protocol on a prepared split: FID/KID, self-reference metrics, baselines")
    ev.add_argument("--weights", help="model folder (default: shipped weights)")
    ev.add_argument("--data", required=True, help="folder made by `sketchcolor prepare-data`")
    ev.add_argument("--split", default="test", choices=["train", "val", "test"])
    ev.add_argument("--out", default="outputs/eval", help="folder for results.json, results.md, grid.png")
    ev.add_argument("--limit", type=int, help="only the first N pictures of the split")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--size", type=int, default=256, help="side (px) the test pictures are letterboxed to; outputs are rendered at it (default 256, the drawings' native size)")
    ev.add_argument("--fill", choices=["regions", "guided", "none"], default=None, help="rendering of our model's output (default: regions)")
    ev.add_argument("--palette-snap", type=float, default=0.0, metavar="S", help="pull region colors toward the reference's palette, 0..1")
    ev.add_argument("--compare", action="append", default=[], metavar="NAME=MODEL_DIR", help="another model to score beside ours")
    ev.add_argument("--grid", type=int, nargs="?", const=6, default=0, metavar="ROWS", help="also write grid.png with ROWS cross and ROWS self rows")
    ev.add_argument("--no-baselines", action="store_true")
    ev.add_argument("--no-fid", action="store_true", help="skip FID/KID (no Inception file needed)")
    ev.add_argument("--no-vgg", action="store_true", help="skip the VGG-feature distance")
    ev.add_argument("--device", default="auto")
    ev.add_argument("-q", "--quiet", action="store_true")
    ev.set_defaults(func=_evaluate)

    ab = sub.add_parser("ablate", help="Table 2: train the recipe with the losses added one at a time and score each")
    ab.add_argument("--recipe", required=True, help="YAML recipe, e.g. configs/default.yaml")
    ab.add_argument("--budget", type=int, required=True, help="training steps per row (same seed for all)")
    ab.add_argument("--data", required=True, help="folder made by `sketchcolor prepare-data`")
    ab.add_argument("--out", default="outputs/ablation")
    ab.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ab.add_argument("--split", default="test", choices=["train", "val", "test"])
    ab.add_argument("--limit", type=int, help="score only the first N pictures of the split")
    ab.add_argument("--no-fid", action="store_true")
    ab.add_argument("--no-vgg", action="store_true")
    ab.add_argument("-q", "--quiet", action="store_true")
    ab.set_defaults(func=_ablate)

    d = sub.add_parser("demo", help="colorize the held-out example drawings with the shipped weights (grid PNG)")
    d.add_argument("--out", default="outputs/demo")
    d.add_argument("--weights", help="model folder (default: the shipped weights/default)")
    d.add_argument("--train-tiny", action="store_true", help="instead train the tiny recipe on sample photos for a few minutes")
    d.add_argument("--steps", type=int, default=None, help="with --train-tiny: training steps (default: the tiny recipe's)")
    d.add_argument("-q", "--quiet", action="store_true")
    d.set_defaults(func=_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    code = _run(args)
    # a torchrun worker exits here, skipping the interpreter's teardown (training.distributed.end_process
    # returns in any process that did not end a group). Only a process whose training loop ran can have
    # ended one, and that loop imported the module: looking it up in sys.modules keeps torch out of
    # `train --dry-run` and of bad-config errors.
    distributed = sys.modules.get("sketchcolor.training.distributed")
    if distributed is not None:
        distributed.end_process(code)
    return code


def _run(args: argparse.Namespace) -> int:
    """The command's exit status; errors become one line on stderr."""
    try:
        return args.func(args)
    except SaidElsewhere:  # another process of the run printed it
        return 2
    except SketchColorError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a folder without write permission, ...: one line, no traceback
        where = f"{e.filename}: " if e.filename else ""
        reason = "no space left on device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        print(f"error: {where}{reason}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
