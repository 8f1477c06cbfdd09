"""Defaults every config starts from; each config file changes only what differs."""

import ml_collections

# Keys that decide variable shapes or what the logits mean: resuming a workdir whose
# checkpoint was written with different values would silently load the wrong thing.
ARCHITECTURE_KEYS = ("classifier", "classifier_spec", "conditioning", "resolution", "model")


def get_base_config():
    c = ml_collections.ConfigDict()
    # Data: a TFDS name (or image folder path) and splits.
    c.dataset = "shapes"
    c.data_dir = ml_collections.config_dict.placeholder(str)
    c.train_split = "train"
    c.eval_split = "test"
    c.eval_examples = 2000        # held-out images for the final agreement
    # The frozen classifier: a registry name, hub URL / Kaggle handle, SavedModel or .keras.
    c.classifier = "shapes"
    c.resolution = 32
    # What a classifier outside the registry expects; each set key overrides the registry's or
    # the model's metadata.json. Unset input_size / num_classes are read from the model's
    # signature when static (README "Classifiers").
    c.classifier_spec = ml_collections.ConfigDict()
    c.classifier_spec.input_size = ml_collections.config_dict.placeholder(int)
    c.classifier_spec.value_range = ml_collections.config_dict.placeholder(tuple)  # (low, high)
    c.classifier_spec.num_classes = ml_collections.config_dict.placeholder(int)
    c.classifier_spec.has_background = ml_collections.config_dict.placeholder(bool)
    c.classifier_spec.signature = ml_collections.config_dict.placeholder(str)
    c.classifier_spec.output_key = ml_collections.config_dict.placeholder(str)
    c.classifier_spec.class_names_file = ml_collections.config_dict.placeholder(str)
    # What G and D are conditioned on: None = the logits (the paper); "penultimate", a layer
    # name, "SIGNATURE:KEY" or "output" (classifiers/features.py). `size` None average-pools a
    # spatial layer to [batch, channels]; s pools it to s×s and flattens.
    c.conditioning = ml_collections.ConfigDict()
    c.conditioning.layer = ml_collections.config_dict.placeholder(str)
    c.conditioning.size = ml_collections.config_dict.placeholder(int)
    # Pre-flight check before any training step: the classifier must beat chance on held-out
    # images, and no other input convention may do clearly better (classifiers/preflight.py).
    c.preflight = ml_collections.ConfigDict()
    c.preflight.enabled = True
    c.preflight.accept_risk = False   # go on despite a failed check (its numbers are kept)
    c.preflight.num_examples = 256    # size of the labelled held-out batch

    c.model = ml_collections.ConfigDict()
    c.model.ch = 64               # base width; BigGAN 128 px uses 96
    c.model.g_multipliers = ml_collections.config_dict.placeholder(tuple)
    c.model.d_multipliers = ml_collections.config_dict.placeholder(tuple)
    c.model.noise_dim = 128
    c.model.embed_dim = 128       # width of the learned logit projection
    c.model.logit_scale = 1.0     # factor on the logits before G's and D's projections
    c.model.g_attention = 0       # self-attention resolution in G (0 = none)
    c.model.d_attention = 0
    c.model.deep = False          # BigGAN-deep generator

    # Optimisation (BigGAN: Adam β1=0, β2=0.999, D lr 4× G lr at 128 px, 2 D steps).
    c.batch_size = 64             # per D step, global; one train step consumes d_steps batches
    c.num_steps = 10_000          # generator steps
    c.d_steps = 2
    c.g_lr = 1e-4
    c.d_lr = 4e-4
    # Fraction of `num_steps` after which both learning rates fall linearly to 0 (1 = never).
    c.lr_decay_from = 1.0
    c.beta1 = 0.0
    c.beta2 = 0.999
    c.ema_decay = 0.9999
    c.ema_start = 1000
    # BigGAN's standing statistics: training-mode batches of G_ema averaged into its batch-norm
    # statistics before evaluation and export (0 = keep the EMA of G's moving statistics).
    c.standing_stats_batches = 16
    # Optional extra generator terms; 0 reproduces the paper's pure hinge objective.
    c.consistency_weight = 0.0
    c.consistency_temperature = 1.0
    c.consistency_start = 0       # generator steps before the consistency term is on
    c.r1_weight = 0.0             # γ of the zero-centred gradient penalty on real images
    c.pixel_weight = 0.0
    # Diversity-sensitive term (models/inverter.py): rewards samples of the same logits that
    # differ, up to `diversity_clip` (mean |Δpixel| per mean |Δε|), against noise collapse.
    c.diversity_weight = 0.0
    c.diversity_clip = 0.5
    # Dosovitskiy & Brox's decoder (configs/dosovitskiy_brox.py): no noise, and a feature term
    # ‖C(x̂) − C(x)‖² / ‖C(x)‖² in the space of the classifier's layer `feature_layer`.
    c.deterministic = False
    c.feature_weight = 0.0
    c.feature_layer = "penultimate"
    # The training log's agreement needs Φ on the fakes; when no loss does (the hinge
    # objective, D&B), that forward pass is taken only every this many generator steps.
    c.train_agreement_every = 10

    # Runtime.
    c.mixed_precision = False     # True → "mixed_bfloat16" (TPU)
    c.jit_compile = False
    # oneDNN's bfloat16 rewrite of the training function on CPUs with AMX-BF16/AVX512-BF16:
    # "auto" (only where the CPU has them), "on" or "off" (training/cpu_bfloat16.py).
    c.cpu_bfloat16 = "off"
    c.steps_per_execution = 1
    c.checkpoint_every = 500      # generator steps between checkpoints (one Keras "epoch")
    c.keep_checkpoints = 3
    c.num_images = 16             # originals | reconstructions in the TensorBoard grid
    c.seed = 0
    return c
