"""The paper's analyses: what does a classifier's logit vector keep of the image?

One module per experiment, each a pure function `run(model, images, ...) -> result` (numbers
in `summary` and `tables`, arrays for the figure) and a separate `render_figure(model,
result) -> PIL image`:

| experiment        | module            | question                                            |
| ----------------- | ----------------- | --------------------------------------------------- |
| reconstructions   | `reconstructions` | does G(Φ(x), ε) keep x's class? how close are logits?|
| invariance        | `invariance`      | what changes when only the noise ε changes?         |
| manipulations     | `manipulations`   | shift, scale, perturb the logits: what moves?       |
| interpolation     | `interpolation`   | where along Φ(a) → Φ(b) does the class switch?      |
| adversarial       | `adversarial`     | do adversarial logits draw the adversarial class?   |
| misclassified     | `misclassified`   | what does a wrong prediction draw?                  |
| ood               | `ood`             | what do unfamiliar inputs' logits draw?             |
| compare           | `compare`         | several inverters on the same images                |
| factors           | `factors`         | which nuisance factors survive in the logits?       |

`model.open_model(path)` gives a training workdir and an export one interface;
`runner.run_analyses` (what `bin/analyze` calls) writes `NAME.png`, `NAME.json` and
`index.html`; `render` holds the figures' drawing primitives and `report` the file writing.

Example:

```python
from logit_inversion.analysis import data, model, invariance
inverter = model.open_model("runs/demo_base")
images = data.load_images("shapes", "test", inverter.resolution, num_images=16)
result = invariance.run(inverter, images, seed=0)
result["summary"]["mean_pixel_std"]
invariance.render_figure(inverter, result).save("invariance.png")
```
"""
