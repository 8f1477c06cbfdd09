"""Re-makes a view downloaded from `bin/explore`, without the page.

    python -m logit_inversion.explore.reproduce VIEW.json OUT.png [--model PATH]
    python -m logit_inversion.explore.reproduce VIEW.json --source_folder SRC

The first form writes G(edited_logits, ε(seed)) through the view's model (or `--model`, e.g.
the same inverter's export): any view, edited or not. The second writes the view's source image
(the R×R PNG the JSON stores) into the folder SRC, and prints the `bin/reconstruct` command
that reconstructs it with the view's seed, which re-makes an unedited view.
"""

import argparse
import os
import sys

import numpy as np


def reconstruction(record, model_path=None):
    """uint8 `[R, R, 3]`: the view's reconstruction, G(edited logits, ε(seed))."""
    # pylint: disable=import-outside-toplevel  (TensorFlow loads only when a view is re-made)
    from logit_inversion.serving import model as model_handle
    from logit_inversion.explore import session  # pylint: disable=import-outside-toplevel

    record = session.read_view(record)
    model = model_handle.open_model(model_path or record["model"])
    logits = np.asarray([record["edited_logits"]], np.float32)
    noise = session.noise_for_seeds([record["seed"]], model.noise_dim)
    return session.to_uint8(model.generate(logits, noise))[0]


def write_source(record, folder):
    """Writes the view's source image to `folder/source.png`; returns its path."""
    from logit_inversion.explore import session  # pylint: disable=import-outside-toplevel

    record = session.read_view(record)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "source.png")
    with open(path, "wb") as f:
        f.write(session.encode_png(session.source_image(record)))
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("view", help="A view JSON downloaded from bin/explore.")
    parser.add_argument("output", nargs="?", help="PNG to write the reconstruction to.")
    parser.add_argument("--model", help="Inverter to use instead of the view's own path.")
    parser.add_argument("--source_folder", help="Write the source image here instead.")
    args = parser.parse_args(argv)
    from logit_inversion.explore import session  # pylint: disable=import-outside-toplevel

    try:
        record = session.read_view(args.view)
        if args.source_folder:
            write_source(record, args.source_folder)
            samples = max(int(record["settings"].get("samples", 1)), 1)
            print(f"bin/reconstruct --model={args.model or record['model']} "
                  f"--dataset={args.source_folder} --split=train --seed={record['seed']} "
                  f"--num_samples={samples} --output=OUT")
            return 0
        if not args.output:
            parser.error("give OUT.png, or --source_folder")
        with open(args.output, "wb") as f:
            f.write(session.encode_png(reconstruction(record, args.model)))
    except (ValueError, OSError, KeyError) as error:
        sys.exit(f"reproduce: error: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
