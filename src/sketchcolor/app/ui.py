"""The Gradio page of `sketchcolor app`: widgets wired to :class:`sketchcolor.app.session.Session`.

Nothing here touches a picture: uploads go to the session (which reads them through the
pipeline's loader), clicks arrive as pixel coordinates. Each browser tab gets its own Session
(created on its first action and kept in a ``gr.State``); the model is loaded once and shared,
and the queue runs one request at a time, so two users never interleave on it.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sketchcolor.errors import SketchColorError
from sketchcolor.inference.pipeline import ColorizePipeline
from sketchcolor.shipped import read_example_pairs

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home (this may run offline)
import gradio as gr  # noqa: E402

from sketchcolor.app.session import MODES, Options, Session, View  # noqa: E402

log = logging.getLogger(__name__)

MAX_UPLOAD = "25mb"  # per file; larger pictures are refused by the page before they reach us
LOOPBACK = ("127.0.0.1", "localhost", "::1")
HELP = """\
**sketchcolor**: paint a line drawing in the colors of any reference picture.
Upload a drawing and a reference (or pick an example below), then **Colorize**.
Then click the result: **inspect** shows where that color came from in the reference (click the
reference to see which parts of the drawing use it); **hint** imposes a correspondence (click the
drawing, then the reference); **recolor** paints the clicked region (click the reference to pick
its color). The least confident regions are outlined in magenta. Fixes can be undone one by one and
downloaded as JSON, to load again on the next drawing of the same character.
"""


def example_pairs(folder: Path) -> list[list[str]]:
    """(sketch, reference) pairs of the shipped test-split examples: the rows of ``pairs.csv``
    (cross pairs, and the lion with its own colors) and, from ``testset/``, drawings with another
    drawing's colors."""
    pairs: list[list[str]] = []
    if (folder / "pairs.csv").is_file():
        pairs += [[str(s), str(r)] for s, r, _ in read_example_pairs(folder) if s.is_file() and r.is_file()]
    lines = sorted((folder / "testset").glob("*_line.png"))[:6]
    colors = sorted((folder / "testset").glob("*_color.png"))[:6]
    for line, color in zip(lines, colors[1:] + colors[:1]):  # each drawing with its neighbour's colors
        pairs.append([str(line), str(color)])
    return pairs


def build(pipe: ColorizePipeline, examples: Sequence[Sequence[str]] = ()) -> gr.Blocks:
    """The page, for ``pipe`` (loaded once, shared by every tab)."""

    def session_of(state: Session | None) -> Session:
        return state if state is not None else Session(pipe)

    def attempt(st: Session | None, action: Callable[[Session], View]) -> tuple:
        """Run ``action`` on the tab's session and show its view; a user's mistake (bad upload,
        click before colorizing) or any other failure becomes one line in the page and the app
        goes on."""
        s = session_of(st)
        try:
            return show(s, action(s))
        except SketchColorError as e:
            return _message(s, f"error: {e}")
        except Exception as e:  # noqa: BLE001 - the page must stay up; the log keeps the traceback
            log.exception("app callback failed")
            return _message(s, f"error: {type(e).__name__}: {e}")

    def _message(s: Session, text: str) -> tuple:
        # the fixes table too: it always shows the session's list (a failed fix is not in it)
        return (gr.skip(),) * 6 + (text, gr.skip(), s.fixes_table(), s)

    def show(s: Session, view: View) -> tuple:
        """The outputs every action updates, in OUTPUTS order."""
        files = s.save_outputs() if s.result is not None and view.result is not None else None
        return (
            view.result if view.result is not None else gr.skip(),
            view.confidence if view.confidence is not None else gr.skip(),
            view.heat if view.heat is not None else gr.skip(),
            str(files[0]) if files else gr.skip(),
            str(files[1]) if files else gr.skip(),
            str(files[2]) if files else gr.skip(),
            view.message,
            view.color if view.color is not None else gr.skip(),
            s.fixes_table(),
            s,
        )

    def options(extract, fill, snap, background, sigma, k, sharpen, epsilon, phi) -> Options:
        return Options(extract_sketch=bool(extract), fill=fill, palette_snap=float(snap), paint_background=bool(background),
                       xdog={"sigma": float(sigma), "k": float(k), "sharpen": float(sharpen),
                             "epsilon": float(epsilon), "phi": float(phi)})

    data = pipe.config.data
    with gr.Blocks(title="sketchcolor", analytics_enabled=False) as page:
        # a tab's session goes when the tab does, and with it the folder of its downloads
        state = gr.State(None, delete_callback=_forget)
        gr.Markdown(HELP)
        with gr.Row():
            with gr.Column():
                sketch_file = gr.File(label="Drawing (or a picture, with line extraction)", file_types=["image"],
                                      elem_id="sketch-file")
                sketch_view = gr.Image(label="Drawing (click: same as clicking the result)", type="numpy",
                                       format="png", interactive=False, elem_id="sketch-view")
            with gr.Column():
                reference_file = gr.File(label="Reference (any colored picture)", file_types=["image"],
                                         elem_id="reference-file")
                reference_view = gr.Image(label="Reference (click: inspect / hint target / pick a color)", type="numpy",
                                          format="png", interactive=False, elem_id="reference-view")
        with gr.Row():
            fill = gr.Radio(["regions", "guided", "none"], value="regions", label="Fill", elem_id="fill")
            snap = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="Palette snapping")
            background = gr.Checkbox(False, label="Paint the background")
        with gr.Accordion("Line extraction (for a color or gray picture)", open=False):
            extract = gr.Checkbox(False, label="Extract line art (XDoG) from the drawing upload")
            with gr.Row():
                sigma = gr.Slider(0.3, 4.0, value=data.xdog_sigma, step=0.05, label="sigma (line width)")
                kk = gr.Slider(1.1, 4.0, value=data.xdog_k, step=0.05, label="k")
                sharpen = gr.Slider(1.0, 100.0, value=data.xdog_sharpen, step=1.0, label="sharpen")
                epsilon = gr.Slider(-0.5, 0.5, value=data.xdog_epsilon, step=0.01, label="epsilon (threshold)")
                phi = gr.Slider(1.0, 200.0, value=data.xdog_phi, step=1.0, label="phi (softness)")
        go = gr.Button("Colorize", variant="primary", elem_id="colorize")
        message = gr.Markdown("", elem_id="message")
        with gr.Row():
            result = gr.Image(label="Result (click it)", type="numpy", format="png", interactive=False, elem_id="result")
            confidence = gr.Image(label="Least confident regions", type="numpy", format="png", interactive=False,
                                  elem_id="confidence")
            heat = gr.Image(label="Where the color came from", type="numpy", format="png", interactive=False,
                            elem_id="heat")
        with gr.Row():
            mode = gr.Radio(list(MODES), value="inspect", label="Click mode", elem_id="mode")
            strength = gr.Slider(0.0, 4.0, value=1.5, step=0.1, label="Hint strength (1.5: the hinted area wins)",
                                 elem_id="strength")
            color = gr.ColorPicker("#d03030", label="Recolor with", elem_id="color")
        with gr.Row():
            undo = gr.Button("Undo last fix", elem_id="undo")
            clear = gr.Button("Clear fixes", elem_id="clear")
            fixes_upload = gr.File(label="Load fixes (JSON)", file_types=[".json"], elem_id="fixes-upload")
        table = gr.Dataframe(headers=["fix", "at", "what"], label="Fixes", interactive=False, elem_id="fixes")
        with gr.Row():
            result_file = gr.File(label="Result (PNG)", interactive=False, elem_id="result-file")
            layer_file = gr.File(label="Color layer (transparent PNG)", interactive=False, elem_id="layer-file")
            fixes_file = gr.File(label="Fixes (JSON)", interactive=False, elem_id="fixes-file")
        if examples:
            gr.Examples(examples=[list(e) for e in examples], inputs=[sketch_file, reference_file],
                        label="Examples (test split, never trained on)")

        outputs = [result, confidence, heat, result_file, layer_file, fixes_file, message, color, table, state]
        settings = [extract, fill, snap, background, sigma, kk, sharpen, epsilon, phi]

        # a new drawing or reference clears the last result and its downloads, so no stale
        # picture stays on the page: None for result, confidence, heat and the three files
        cleared = (None,) * 6

        def on_sketch(s: Session, path, *opts):
            s.options = options(*opts)
            s.set_sketch(path, name=Path(path).name if path else "sketch")
            view = s.line_art() if path else None
            return (view, "drawing loaded" if path else "", *cleared, s)

        def on_reference(s: Session, path):
            s.set_reference(path, name=Path(path).name if path else "reference")
            return (s.reference, "reference loaded" if path else "", *cleared, s)

        def failing(fn: Callable[..., tuple]) -> Callable[..., tuple]:
            """For the upload callbacks: on a bad file clear the picture and say why in one line
            (any other failure too, as :func:`attempt` does)."""

            def run(st, *args):
                s = session_of(st)
                try:
                    return fn(s, *args)
                except SketchColorError as e:
                    return (None, f"error: {e}", *cleared, s)
                except Exception as e:  # noqa: BLE001 - the page must stay up; the log keeps the traceback
                    log.exception("app upload failed")
                    return (None, f"error: {type(e).__name__}: {e}", *cleared, s)

            return run

        shown = [result, confidence, heat, result_file, layer_file, fixes_file, state]
        sketch_file.change(failing(on_sketch), [state, sketch_file, *settings], [sketch_view, message, *shown])
        # the extracted line art follows the extraction settings
        for widget in (extract, sigma, kk, sharpen, epsilon, phi):
            (widget.change if widget is extract else widget.release)(
                failing(on_sketch), [state, sketch_file, *settings], [sketch_view, message, *shown])
        reference_file.change(failing(on_reference), [state, reference_file], [reference_view, message, *shown])

        def on_colorize(st, *opts):
            return attempt(st, lambda s: s.colorize(options(*opts)))

        def on_result_click(st, md, col, stren, evt: gr.SelectData):
            return attempt(st, lambda s: s.click_result(*_pixel(evt), md, col, stren))

        def on_reference_click(st, md, stren, evt: gr.SelectData):
            return attempt(st, lambda s: s.click_reference(*_pixel(evt), md, stren))

        def on_fixes(st, path):
            return attempt(st, lambda s: s.load_fixes(path) if path else View())

        go.click(on_colorize, [state, *settings], outputs)
        for image in (result, confidence, sketch_view):
            image.select(on_result_click, [state, mode, color, strength], outputs)
        reference_view.select(on_reference_click, [state, mode, strength], outputs)
        undo.click(lambda st: attempt(st, Session.undo), [state], outputs)
        clear.click(lambda st: attempt(st, Session.clear_fixes), [state], outputs)
        fixes_upload.upload(on_fixes, [state, fixes_upload], outputs)
    return page


def _pixel(evt: gr.SelectData) -> tuple[int, int]:
    """The picture's pixel (x, y) a click on an image component selected: ``evt.index`` is
    ``[x, y]`` in the picture's own pixels, or None for a click on the padding around it."""
    index = evt.index
    if not isinstance(index, (list, tuple)) or len(index) != 2 or not all(isinstance(v, (int, float)) for v in index):
        raise SketchColorError("click inside the picture")
    return int(index[0]), int(index[1])


def _forget(state: object) -> None:
    """gr.State's delete callback: remove a closed tab's download folder."""
    if isinstance(state, Session):
        shutil.rmtree(state.folder, ignore_errors=True)


def serve(weights: str | Path, host: str = "127.0.0.1", port: int = 7860, device: str = "auto",
          examples: Path | None = None, open_browser: bool = False) -> None:
    """Load ``weights`` once and serve the page until interrupted."""
    if host not in LOOPBACK:
        print(f"warning: serving on {host}: anyone who can reach this address can use the app "
              "(no authentication); use the default 127.0.0.1 unless you mean it", file=sys.stderr)
    pipe = ColorizePipeline.from_pretrained(weights, device=device)
    pairs = example_pairs(examples) if examples is not None and examples.is_dir() else []
    page = build(pipe, pairs)
    page.queue(default_concurrency_limit=1, max_size=64)
    allowed = [str(examples)] if examples is not None else []
    page.launch(server_name=host, server_port=port, max_file_size=MAX_UPLOAD, allowed_paths=allowed,
                inbrowser=open_browser, show_error=True, ssr_mode=False, footer_links=[], quiet=False)
