"""Generators, their checkpoints and the built-in models.

- :mod:`.registry`: the built-in models shipped in ``weights/`` (:func:`list_builtin_models`) and
  how a name a user gives becomes a checkpoint path (:func:`resolve_checkpoint`);
- :mod:`.checkpoint`: safetensors checkpoints with their JSON description and model card;
- :mod:`.generator`, :mod:`.discriminator`, :mod:`.layers`: the SR-GAN networks;
- :mod:`.surgery`: growing a generator deeper, fitting it to another channel count, making a
  through-plane one;
- :mod:`.onnx`: ONNX export and the ONNX Runtime generator.
"""
