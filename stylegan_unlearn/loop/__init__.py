"""Our training loop: device-agnostic StyleGAN2 training with the reference loss/network plugin seams.

`training_loop` runs one rank; `launch_training` starts one or several ranks (spawned processes or torchrun).
"""
from stylegan_unlearn.loop.launch import launch_training  # noqa: F401
from stylegan_unlearn.loop.training_loop import NonFiniteError, training_loop  # noqa: F401
