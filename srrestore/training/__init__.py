"""Two-phase SR-GAN training: degradations, patch data, the trainer, EMA and resumable states.

Typical use (what ``srrestore train`` does)::

    from srrestore.domains.image import read_image
    from srrestore.training import (PatchDataset, Trainer, TrainingConfig, TrainingOutputs,
                                    find_images, images_fingerprint, load_images)

    config = TrainingConfig(channels=3, scale=(4, 4), pretrain_steps=2000, gan_steps=500)
    images = load_images(find_images(["data/train"]), config.channels, read_image)
    dataset = PatchDataset(images, config.patch_size, config.degradation, seed=config.seed)
    outputs = TrainingOutputs.beside("model.safetensors", config.gan_steps)
    Trainer(config, dataset, [], outputs, data_fingerprint=images_fingerprint(images)).run()
"""

from srrestore.training.config import OptimizerConfig, TrainingConfig, load_recipe, merge_recipes, parse_scale
from srrestore.training.data import (
    PatchDataset,
    StepSampler,
    TrainingImage,
    ValidationSet,
    find_images,
    images_fingerprint,
    load_images,
    prepare_image,
    split_images,
)
from srrestore.training.degradation import Degradation, downscale, jpeg_compress, upscale_bicubic
from srrestore.training.ema import ModelEMA
from srrestore.training.state import TrainingState, load_state, save_state
from srrestore.training.trainer import Trainer, TrainingOutputs, TrainingResult

__all__ = [
    "Degradation",
    "ModelEMA",
    "OptimizerConfig",
    "PatchDataset",
    "StepSampler",
    "Trainer",
    "TrainingConfig",
    "TrainingImage",
    "TrainingOutputs",
    "TrainingResult",
    "TrainingState",
    "ValidationSet",
    "downscale",
    "find_images",
    "images_fingerprint",
    "jpeg_compress",
    "load_images",
    "load_recipe",
    "load_state",
    "merge_recipes",
    "parse_scale",
    "prepare_image",
    "save_state",
    "split_images",
    "upscale_bicubic",
]
