"""The Gradio page of `bin/explore`: layout and event wiring around a `session.Explorer`.

Every handler catches what the user can cause (`session.InputError`: a non-image upload, a
truncated file, NaN logits) and anything unexpected, and shows it in the status line and as a
toast; the page never shows a traceback (the server's log keeps it for unexpected errors).

Element ids the browser test and the benchmark rely on: `upload`, `status`, `seed`,
`resample`, `samples`, `shift`, `scale`, `sigma`, `delta0`..`delta4`, `reset`,
`reconstruction0` (and `reconstruction1` when comparing), `grid0`, `std0`, `download`,
`download_files`, `gallery`.
"""

import functools
import json
import os
import sys
import tempfile
import traceback

import gradio as gr
import numpy as np

from logit_inversion.explore import pictures, session

# Small images shown large: keep the pixels square instead of blurring them.
CSS = """
.pixels img { image-rendering: pixelated; object-fit: contain; }
#status { min-height: 1.5em; }
"""
EDIT_RANGE = 4.0          # shift, σ and class sliders span ±4 ŝ
SCALE_RANGE = (0.0, 4.0)
GRID_COLUMNS = 4          # K = 8 as two rows: large enough tiles to see what varies


def _guarded(count):
    """Turns a handler's InputError (and any other exception) into a status message and a
    toast, leaving its `count` other outputs unchanged; the status is the last output."""
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args):
            try:
                return fn(*args)
            except session.InputError as error:
                message = str(error)
            except Exception as error:  # pylint: disable=broad-except
                traceback.print_exc(file=sys.stderr)
                message = f"Something went wrong ({type(error).__name__}): {error}".splitlines()[0]
            gr.Warning(message, duration=6)
            return (*[gr.update() for _ in range(count)], f"⚠️ {message}")
        return run
    return wrap


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _label(top):
    return {name: p for name, p, _ in top}


def _logit_frame(logits, names, limit=100):
    """The raw logits as a table for the bar chart (the `limit` largest when there are more)."""
    import pandas as pd  # pylint: disable=import-outside-toplevel  (a gradio dependency)

    order = np.arange(len(logits))
    if len(order) > limit:
        order = np.sort(np.argsort(-logits)[:limit])
    return pd.DataFrame({"class": [f"{i}:{names[i]}" for i in order],
                         "logit": [float(logits[i]) for i in order]})


def build(explorer, title="Logit inversion explorer"):
    """The page for `explorer`, as a `gr.Blocks` (not launched)."""
    models = explorer.models
    n_models = len(models)
    names = explorer.class_names

    # Every new picture is a file in Gradio's cache; a page left open for days would fill
    # the disk, so files older than an hour are removed, hourly.
    with gr.Blocks(title=title, delete_cache=(3600, 3600)) as page:
        source_a = gr.State(None)
        source_b = gr.State(None)
        slider_classes = gr.State([])   # the class index behind each δ slider
        heading = " vs ".join(f"`{m.name}` ({m.kind}, {m.resolution} px)" for m in models)
        gr.Markdown(f"## {title}\nInverting {heading}. Pick or upload an image; the "
                    "reconstruction G(Φ(x), ε) follows the logit edits.")
        status = gr.Markdown("", elem_id="status")

        with gr.Row():
            with gr.Column(scale=2, min_width=280):
                with gr.Tab("Upload"):
                    # A button rather than a file box: it takes the next file at once, with
                    # no previous upload to clear first.
                    upload = gr.UploadButton("Upload an image (JPEG or PNG, any size)",
                                             type="filepath", elem_id="upload")
                if explorer.gallery is not None:
                    with gr.Tab(f"Test split ({explorer.gallery_source})"):
                        target = gr.Radio(["A: the image to invert", "B: interpolation end"],
                                          value="A: the image to invert", show_label=False)
                        captions = explorer.gallery_labels or [None] * len(explorer.gallery)
                        gallery = gr.Gallery(
                            list(zip(explorer.gallery, captions)),
                            columns=4, height=250, allow_preview=False, show_label=False,
                            elem_id="gallery", elem_classes="pixels")
                with gr.Row():
                    source_image = gr.Image(label="x (as the model sees it)", height=200,
                                            interactive=False, format="png",
                                            elem_id="source", elem_classes="pixels")
                    source_top = gr.Label(num_top_classes=5, label="Φ(x): top-5")
                logit_plot = gr.BarPlot(x="class", y="logit", label="Φ(x): raw logits",
                                        height=200, x_label_angle=-45)

            with gr.Column(scale=3, min_width=420):
                with gr.Row():
                    seed = gr.Number(0, label="seed (ε)", precision=0, elem_id="seed",
                                     min_width=90)
                    resample = gr.Button("Resample ε", elem_id="resample")
                    samples = gr.Slider(0, session.MAX_SAMPLES, 8, step=1, label="K samples",
                                        elem_id="samples")
                with gr.Row():
                    shift = gr.Slider(-EDIT_RANGE, EDIT_RANGE, 0, step=0.05,
                                      label="shift c (× ŝ)", elem_id="shift")
                    scale = gr.Slider(*SCALE_RANGE, 1, step=0.05, label="scale s",
                                      elem_id="scale")
                    sigma = gr.Slider(0, EDIT_RANGE, 0, step=0.05, label="noise σ (× ŝ)",
                                      elem_id="sigma")
                with gr.Accordion("Move one class's logit (× ŝ)", open=False):
                    with gr.Row():
                        deltas = [gr.Slider(-EDIT_RANGE, EDIT_RANGE, 0, step=0.05,
                                            label=f"top {k + 1}", elem_id=f"delta{k}",
                                            min_width=120)
                                  for k in range(session.TOP)]
                reset = gr.Button("Reset edits", elem_id="reset", size="sm")
                outputs_per_model = []
                with gr.Row():
                    for i, model in enumerate(models):
                        with gr.Column(min_width=200):
                            if n_models > 1:
                                gr.Markdown(f"**{model.name}**")
                            with gr.Row():
                                reconstruction = gr.Image(
                                    label="G(z', ε)", height=200, interactive=False,
                                    format="png", elem_id=f"reconstruction{i}",
                                    elem_classes="pixels")
                                reconstruction_top = gr.Label(num_top_classes=5,
                                                              label="Φ(G(z', ε)): top-5")
                            grid = gr.Image(label="K reconstructions (seed, seed + 1, …)",
                                            height=160, interactive=False, format="png",
                                            elem_id=f"grid{i}", elem_classes="pixels")
                            with gr.Row():
                                std = gr.Image(label="per-pixel std over the K (0 to 0.25)",
                                               height=150, interactive=False, format="png",
                                               elem_id=f"std{i}", elem_classes="pixels")
                                facts = gr.Markdown("", elem_id=f"facts{i}")
                            outputs_per_model += [reconstruction, reconstruction_top, grid,
                                                  std, facts]
                with gr.Row():
                    download = gr.Button("Download view (PNG + JSON)", elem_id="download")
                    download_files = gr.File(label="view", file_count="multiple", height=90,
                                             interactive=False, elem_id="download_files",
                                             visible=False)

        with gr.Accordion("Interpolate between two images' logits", open=False):
            gr.Markdown("Image A is the one above; choose B here (or click a test image with "
                        "'B' selected). The noise stays fixed to ε(seed).")
            with gr.Row():
                upload_b = gr.UploadButton("Upload image B", type="filepath",
                                           elem_id="upload_b")
                source_b_image = gr.Image(label="B", height=110, interactive=False,
                                          format="png", elem_id="source_b",
                                          elem_classes="pixels")
                steps = gr.Slider(2, 17, session.INTERPOLATION_STEPS, step=1, label="steps")
                interpolate = gr.Button("Interpolate", elem_id="interpolate")
            strip_images = [gr.Image(label=f"{m.name}: α from 0 (A) to 1 (B); red: first "
                                           "frame of the new class", height=110,
                                     interactive=False, format="png", elem_id=f"strip{i}",
                                     elem_classes="pixels")
                            for i, m in enumerate(models)]
            strip_facts = gr.Markdown("", elem_id="strip_facts")

        controls = [seed, samples, shift, scale, sigma, *deltas]

        def settings_of(seed_value, samples_value, shift_value, scale_value, sigma_value,
                        *rest):
            *delta_values, classes = rest
            pairs = tuple(sorted((int(c), float(d)) for c, d in zip(classes, delta_values)
                                 if d))
            return session.Settings(seed=int(seed_value or 0), shift=float(shift_value),
                                    scale=float(scale_value), sigma=float(sigma_value),
                                    class_deltas=pairs, samples=int(samples_value))

        @_guarded(len(outputs_per_model))
        def render(source, *values):
            if source is None:
                return (*[gr.update() for _ in outputs_per_model], "")
            settings = settings_of(*values)
            views = explorer.render(source, settings)
            out = []
            for view in views:
                edited_top = view.edited_top[0]
                facts = [f"edited logits' top-1: **{edited_top[0]}** ({edited_top[1]:.0%}); "
                         f"ŝ = {view.unit:.3g}"]
                if n_models > 1:   # the left column shows the first model's Φ(x) only
                    facts.insert(0, f"Φ(x) top-1: **{view.top[0][0]}** ({view.top[0][1]:.0%})")
                if view.std_map is not None:
                    facts.append(f"mean pixel std over K = {settings.samples}: "
                                 f"**{view.mean_std:.4f}**")
                grid = std = None
                if view.samples is not None:
                    grid = pictures.tile(view.samples, GRID_COLUMNS)
                    std = pictures.std_image(view.std_map)
                out += [view.reconstruction, _label(view.reconstruction_top), grid, std,
                        "\n\n".join(facts)]
            return (*out, "")

        render_inputs = [source_a, *controls, slider_classes]
        render_outputs = [*outputs_per_model, status]

        def render_keeping_status(*args):
            # After a new source: a message the source step just showed (a bad upload) must
            # stay visible, so only a failure here replaces it.
            out = render(*args)
            return (*out[:-1], out[-1] or gr.update())

        @_guarded(6 + session.TOP)
        def set_source(source):
            logits = explorer.logits(source)[0]
            top = session.top_classes(logits, names)
            slider_updates = [gr.update(label=f"{name} ({p:.0%})", value=0)
                              for name, p, _ in top]
            slider_updates += [gr.update(label="—", value=0)] * (session.TOP - len(top))
            return (source, source.images[0], _label(top), _logit_frame(logits, names),
                    [index for _, _, index in top], *slider_updates,
                    gr.update(value=None, visible=False), "")

        source_outputs = [source_a, source_image, source_top, logit_plot, slider_classes,
                          *deltas, download_files, status]

        @_guarded(6 + session.TOP)
        def from_upload(path):
            if not path:
                return (*[gr.update() for _ in range(6 + session.TOP)], "")
            return set_source(explorer.source_from_bytes(_read(path), os.path.basename(path)))

        def after_source(event):
            event.then(render_keeping_status, render_inputs, render_outputs,
                       show_progress="hidden")

        after_source(upload.upload(from_upload, upload, source_outputs))

        if explorer.gallery is not None:
            @_guarded(8 + session.TOP)
            def from_gallery(choice, event: gr.SelectData):
                source = explorer.source_from_gallery(event.index)
                if choice.startswith("B"):
                    return (source, source.images[0],
                            *[gr.update() for _ in range(6 + session.TOP)], "")
                return (gr.update(), gr.update(), *set_source(source))

            after_source(gallery.select(from_gallery, target,
                                        [source_b, source_b_image, *source_outputs]))

        for control in [samples, shift, scale, sigma, *deltas]:
            control.input(render, render_inputs, render_outputs, trigger_mode="always_last",
                          show_progress="hidden", queue=False)
        seed.submit(render, render_inputs, render_outputs, show_progress="hidden")
        seed.blur(render, render_inputs, render_outputs, show_progress="hidden")

        def new_seed():
            return int(np.random.default_rng().integers(0, 2**31 - 1))

        resample.click(new_seed, None, seed).then(render, render_inputs, render_outputs,
                                                   show_progress="hidden")

        def reset_edits():
            return [0.0, 1.0, 0.0, *[0.0] * session.TOP]

        reset.click(reset_edits, None, [shift, scale, sigma, *deltas]).then(
            render, render_inputs, render_outputs, show_progress="hidden")

        @_guarded(1)
        def write_download(source, *values):
            if source is None:
                raise session.InputError("Pick or upload an image first.")
            settings = settings_of(*values)
            views = explorer.render(source, settings)
            folder = tempfile.mkdtemp(prefix="explore_view_")
            record = explorer.view_record(source, settings, views)
            if n_models > 1:
                record["compare"] = [explorer.view_record(source, settings, views, i)
                                     for i in range(1, n_models)]
            json_path = os.path.join(folder, "view.json")
            with open(json_path, "w", encoding="utf-8") as f:
                json.dump(record, f, indent=1)
            png_path = os.path.join(folder, "view.png")
            rows = [(image, v.reconstruction, v.samples, v.std_map)
                    for image, v in zip(source.images, views)]
            with open(png_path, "wb") as f:
                f.write(session.encode_png(pictures.view_png(rows)))
            return gr.update(value=[png_path, json_path], visible=True), ""

        download.click(write_download, render_inputs, [download_files, status])

        @_guarded(2)
        def from_upload_b(path):
            if not path:
                return gr.update(), gr.update(), ""
            source = explorer.source_from_bytes(_read(path), os.path.basename(path))
            return source, source.images[0], ""

        upload_b.upload(from_upload_b, upload_b, [source_b, source_b_image, status])

        @_guarded(len(models) + 1)
        def run_interpolation(a, b, seed_value, steps_value):
            if a is None or b is None:
                raise session.InputError("Interpolation needs image A (above) and image B.")
            results = explorer.interpolate(a, b, int(seed_value or 0), int(steps_value))
            strips, lines = [], []
            for model, result in zip(models, results):
                alphas = result["alphas"]
                switch = result["switch_alpha"]
                index = None if switch is None else int(np.argmin(np.abs(alphas - switch)))
                strips.append(pictures.interpolation_strip(result["frames"], index))
                where = ("no class switch" if switch is None else
                         f"class switches at **α = {switch:.3g}** ({result['classes'][0]} → "
                         f"{result['classes'][index]})")
                logit_where = ("never" if result["logit_switch_alpha"] is None
                               else f"α = {result['logit_switch_alpha']:.3g}")
                lines.append(f"`{model.name}`: {where}; the interpolated logits' own argmax "
                             f"switches at {logit_where}.")
            return (*strips, "\n\n".join(lines), "")

        interpolate.click(run_interpolation, [source_a, source_b, seed, steps],
                          [*strip_images, strip_facts, status])
    return page


def serve(explorer, port=0):
    """Builds and launches the page on 127.0.0.1 (never another interface); blocks until
    interrupted.

    Args:
        explorer: a `session.Explorer`.
        port: TCP port; 0 picks a free one.
    """
    page = build(explorer)
    page.queue(default_concurrency_limit=1)
    _, url, _ = page.launch(
        server_name="127.0.0.1", server_port=port or _free_port(), prevent_thread_lock=True,
        quiet=True, share=False, show_error=False, css=CSS, inbrowser=False,
        footer_links=[], ssr_mode=False, mcp_server=False)
    # The one line a user (and the test harness) looks for.
    print(f"bin/explore: serving on {url.rstrip('/')}/", flush=True)
    try:
        page.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        page.close()


def _free_port():
    import socket  # pylint: disable=import-outside-toplevel

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
